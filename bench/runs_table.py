"""The targets of several bench runs side by side, as the Markdown table docs/performance.md shows.

  python -m bench.runs_table DIR [DIR ...]      # each DIR holds a results.json of `python -m bench`

One row per target (the targets each run's report computed: ratios and CPU per id taken within
that run), one column per run, then "met" (in every run / in some / in none), and a second table
with the CPU µs per id of every case of the runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def load(directory: Path) -> dict[str, Any]:
    path = directory / "results.json"
    if not path.is_file():
        raise SystemExit(f"{path}: no such file (a directory written by `python -m bench --out DIR`)")
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def targets_table(runs: list[dict[str, Any]]) -> str:
    names: list[str] = []
    by_run: list[dict[str, dict[str, Any]]] = []
    for run in runs:
        targets = {t["target"]: t for t in run["ratios"]["targets"]}
        by_run.append(targets)
        names += [name for name in targets if name not in names]
    head = "| target | wanted | " + " | ".join(f"run {n + 1}" for n in range(len(runs))) + " | met |"
    lines = [head, "|---|---:|" + "---:|" * len(runs) + "---|"]
    for name in names:
        found = [targets.get(name) for targets in by_run]
        wanted = next((t["wanted"] for t in found if t is not None), None)
        values = [_number(t["value"]) if t is not None else "-" for t in found]
        verdicts = [t["met"] for t in found if t is not None and t["met"] is not None]
        met = "-" if not verdicts else "yes" if all(verdicts) else "no" if not any(verdicts) else "in some runs"
        lines.append(f"| {name} | {_number(wanted)} | " + " | ".join(values) + f" | {met} |")
    return "\n".join(lines)


def cpu_table(runs: list[dict[str, Any]]) -> str:
    cases: list[str] = []
    for run in runs:
        cases += [case for case in run["cases"] if case not in cases]
    head = "| case | " + " | ".join(f"run {n + 1}: server (Redis) µs/id, ids/s" for n in range(len(runs))) + " |"
    lines = [head, "|---|" + "---:|" * len(runs)]
    for case in cases:
        cells = []
        for run in runs:
            found = run["cases"].get(case)
            if found is None:
                cells.append("-")
                continue
            cpu = found.get("cpu_us_per_id", {})
            server, redis = cpu.get("server"), cpu.get("redis")
            text = _number(server) if server is not None else "-"
            if redis is not None:
                text += f" ({_number(redis)})"
            cells.append(f"{text}, {found['ids_per_s']:,.0f}")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    args = parser.parse_args()
    runs = [load(directory) for directory in args.dirs]
    for n, run in enumerate(runs, 1):
        before, after = (run.get(key) or [float("nan")] for key in ("load_average", "load_average_after"))
        print(f"- run {n}: started {run.get('started')}, 1-minute load average {before[0]:.1f} -> {after[0]:.1f}")
    print()
    print(targets_table(runs))
    print()
    print(cpu_table(runs))


if __name__ == "__main__":
    main()
