"""Ratios to the baselines, the Markdown table and the PNG plot, from one run's results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGETS = [
    # (name, numerator case, denominator, wanted ratio, higher is better)
    ("CheckBatch(100) vs Redis SET NX PX -P 16", "sidecar CheckBatch(100)", "redis:SET NX PX -P 16", 0.50, True),
    (
        "Stream CheckBatch(100) vs Redis SET NX PX -P 16",
        "sidecar Stream CheckBatch(100)",
        "redis:SET NX PX -P 16",
        0.60,
        True,
    ),
    ("unary Check vs no-op unary", "sidecar Check", "noop Check", 0.80, True),
]


# Issue 12, in CPU per id (steadier than ids/s on a shared machine); every one is "at most".
# (name, value from the cases, wanted)
CPU_TARGETS: list[tuple[str, Any, float]] = [
    (
        "Helper per message through the Stream: sidecar CPU µs/message",
        lambda c: _cpu(c, "sidecar Helper, stream"),
        250.0,
    ),
    ("unary Check: server CPU vs no-op", lambda c: _cpu(c, "sidecar Check") / _cpu(c, "noop Check"), 1.3),
    ("unary Check: Redis CPU µs per Check", lambda c: _cpu(c, "sidecar Check", "redis"), 10.0),
    (
        "CheckBatch(100): server CPU per id vs no-op",
        lambda c: _cpu(c, "sidecar CheckBatch(100)") / _cpu(c, "noop CheckBatch(100)"),
        2.0,
    ),
    (
        "Stream CheckBatch(100): server CPU per id vs no-op",
        lambda c: _cpu(c, "sidecar Stream CheckBatch(100)") / _cpu(c, "noop Stream CheckBatch(100)"),
        2.0,
    ),
    ("CheckBatch(100): Redis CPU µs per id", lambda c: _cpu(c, "sidecar CheckBatch(100)", "redis"), 1.5),
    (
        "Stream CheckBatch(100): Redis CPU µs per id",
        lambda c: _cpu(c, "sidecar Stream CheckBatch(100)", "redis"),
        1.5,
    ),
]


def _cpu(cases: dict[str, Any], name: str, who: str = "server") -> float:
    return float(cases[name]["cpu_us_per_id"][who])


def _rate(results: dict[str, Any], name: str) -> float:
    if name.startswith("redis:"):
        return float(results["redis"][name.removeprefix("redis:")]["ids_per_s"])
    return float(results["cases"][name]["ids_per_s"])


def _baseline_of(name: str, case: dict[str, Any]) -> str:
    """The no-op case with the same load shape as a sidecar case."""
    return {
        "check": "noop Check",
        "claim_commit": "noop Claim+Commit",
        "check_batch": "noop CheckBatch(100)",
        "stream": "noop Stream Check",
        "stream_batch": "noop Stream CheckBatch(100)",
        "helper_stream": "noop Helper, stream",
        "helper_unary": "noop Helper, unary",
    }[case["mode"]]


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    cases = results["cases"]
    redis_p1 = _rate(results, "redis:SET NX PX")
    redis_p16 = _rate(results, "redis:SET NX PX -P 16")
    per_case = {}
    for name, case in cases.items():
        if case["server"] != "sidecar" or case["rate"] or _baseline_of(name, case) not in cases:
            continue
        noop = cases[_baseline_of(name, case)]
        per_case[name] = {
            "vs_noop": case["ids_per_s"] / noop["ids_per_s"],
            "vs_redis": case["ids_per_s"] / (redis_p16 if "batch" in case["mode"] else redis_p1),
            "p99_vs_noop": case["p99_ms"] / noop["p99_ms"],
        }
    targets = []
    for label, value_of, most in CPU_TARGETS:
        try:
            value = value_of(cases)
        except KeyError:  # a case this run left out
            continue
        targets.append({"target": label, "wanted": most, "value": value, "met": value <= most})
    for label, num, den, wanted, higher in TARGETS:
        if num not in cases:
            continue
        value = _rate(results, num) / _rate(results, den)
        label = f"{label} (issue 7, ids/s)"
        targets.append({"target": label, "wanted": wanted, "value": value, "met": value >= wanted if higher else None})
    if "sidecar Check at half load" in cases:
        half_s, half_n = cases["sidecar Check at half load"], cases["noop Check at half load"]
        value = half_s["p99_ms"] / half_n["p99_ms"]
        targets.append(
            {"target": "Check p99 at half load vs no-op p99", "wanted": 2.0, "value": value, "met": value <= 2.0}
        )
    if "sidecar Check, 50 callers, redis-py" in cases:
        targets.append(
            {
                "target": "50 single-id callers: fastpipe vs redis-py (informative)",
                "wanted": None,
                "value": cases["sidecar Check, 50 callers"]["ids_per_s"]
                / cases["sidecar Check, 50 callers, redis-py"]["ids_per_s"],
                "met": None,
            }
        )
    if "memory" in results:
        usage = results["memory"]["check"]["memory_usage_bytes_per_key"]
        info = results["memory"]["check"]["info_bytes_per_record"]
        targets.append(
            {"target": "Check-only record, MEMORY USAGE bytes", "wanted": 100, "value": usage, "met": usage <= 100}
        )
        targets.append(
            {"target": "Check-only record, INFO used_memory bytes", "wanted": 100, "value": info, "met": info <= 100}
        )
    return {"per_case": per_case, "targets": targets}


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value != value:  # NaN
        return "-"
    return f"{value:,.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    r = results["ratios"]
    lines = [
        f"Run {results['started']}: Redis {results['redis_version']}, Python {results['python']}, "
        f"{results['settings']['repeats']} x {results['settings']['duration']:g} s per case (median shown), "
        f"{results['settings']['clients']} load processes; sidecar workers: "
        + ("N-worker cases included" if results["workers_supported"] else "1 (`serve --workers` not available)")
        + (
            f"; load average {results['load_average'][0]:.1f} before, {results['load_average_after'][0]:.1f} after"
            if "load_average" in results
            else ""
        ),
        "",
        "| case | in flight | ids/s | p50 ms | p99 ms | p99.9 ms | CPU server | CPU redis | CPU load | "
        "server CPU µs/id | server peak RSS MB | vs no-op | vs Redis |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, case in results["redis"].items():
        lines.append(
            f"| redis-benchmark {name} | {case['concurrency']} | {_f(case['ids_per_s'], 0)} | {_f(case['p50_ms'])} "
            f"| {_f(case['p99_ms'])} | - | - | {_f(case['cpu']['redis'])} | - | - | - | - | 1.00 |"
        )
    for name, case in results["cases"].items():
        ratio = r["per_case"].get(name, {})
        load = f"{case['concurrency']}" + (f" @{case['rate']:,.0f}/s" if case["rate"] else "")
        lines.append(
            f"| {name} | {load} | {_f(case['ids_per_s'], 0)} | {_f(case['p50_ms'])} | {_f(case['p99_ms'])} "
            f"| {_f(case['p999_ms'])} | {_f(case['cpu']['server'])} | {_f(case['cpu']['redis'])} "
            f"| {_f(case['cpu']['load'])} | {_f(case['cpu_us_per_id']['server'], 1)} "
            f"| {_f(case['peak_rss_mb']['server'], 0)} "
            f"| {_f(ratio.get('vs_noop'))} | {_f(ratio.get('vs_redis'))} |"
        )
    lines += ["", "CPU is in cores (CPU seconds per wall second). Ratios: ids/s over the baseline's ids/s.", ""]
    lines += [
        "CPU cost per id (less sensitive to a busy machine than ids/s): server and Redis CPU µs per id, and the",
        "ids/s one fully used core would give at that cost.",
        "",
        "| case | server µs/id | Redis µs/id | ids/s per server core | ids/s per Redis core |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, case in results["redis"].items():
        redis_us = case.get("cpu_us_per_id", {}).get("redis") or 1e6 * case["cpu"]["redis"] / case["ids_per_s"]
        lines.append(f"| redis-benchmark {name} | - | {_f(redis_us)} | - | {_f(1e6 / redis_us, 0)} |")
    for name, case in results["cases"].items():
        if case["rate"]:
            continue
        server_us, redis_us = case["cpu_us_per_id"]["server"], case["cpu_us_per_id"]["redis"]
        per_redis_core = _f(1e6 / redis_us, 0) if redis_us > 0.05 else "-"
        label = f"{name} (transport used: {case['transport']})" if case.get("transport") and "Helper" in name else name
        lines.append(
            f"| {label} | {_f(server_us)} | {_f(redis_us) if redis_us > 0.05 else '-'} "
            f"| {_f(1e6 / server_us, 0)} | {per_redis_core} |"
        )
    lines.append("")
    lines += ["| target | wanted | reached | met |", "|---|---:|---:|---|"]
    for t in r["targets"]:
        met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
        lines.append(f"| {t['target']} | {_f(t['wanted'])} | {_f(t['value'])} | {met} |")
    if "memory" in results:
        m = results["memory"]
        lines += [
            "",
            f"Memory over {m['ids']:,} records (key like `{m['key_example']}`):",
            "",
            "| record (floor: plain SET NX PX of an integer, same keys) | INFO used_memory bytes/record "
            "| MEMORY USAGE bytes/key | value bytes |",
            "|---|---:|---:|---:|",
        ]
        for kind in [k for k in ("check", "claim_commit", "floor") if k in m]:
            lines.append(
                f"| {kind} | {_f(m[kind]['info_bytes_per_record'], 1)} | {_f(m[kind]['memory_usage_bytes_per_key'], 1)}"
                f" | {m[kind]['value_bytes']} |"
            )
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for server, style in (("noop", "o--"), ("sidecar", "s-")):
        points = sorted((c["concurrency"], c["ids_per_s"]) for c in results.get("sweep", []) if c["server"] == server)
        left.plot([p[0] for p in points], [p[1] for p in points], style, label=f"{server} unary Check")
    left.set_xscale("log", base=2)
    left.set_xlabel("calls in flight")
    left.set_ylabel("calls/s")
    left.set_title("Unary Check throughput vs concurrency")
    left.legend()
    names = [n for n, c in results["cases"].items() if not c["rate"] and "," not in n]
    x = range(len(names))
    for offset, key in ((-0.25, "p50_ms"), (0.0, "p99_ms"), (0.25, "p999_ms")):
        right.bar([i + offset for i in x], [results["cases"][n][key] for n in names], width=0.25, label=key[:-3])
    right.set_xticks(list(x), names, rotation=60, ha="right", fontsize=7)
    right.set_yscale("log")
    right.set_ylabel("latency, ms")
    right.set_title("Latency percentiles")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
