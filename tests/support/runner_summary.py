"""The non-Python runners' own summaries (go test, node --test, Maven Surefire), shown by scripts/test.sh.

pytest hides a passing test's output (and xdist workers' stdout), so each wrapper test hands its
runner's summary to `report`: it is printed (visible with -s) and, when scripts/test.sh sets
$DEDUP_RUNNER_SUMMARIES, written to that directory; test.sh prints the files after the run.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path


def report(runner: str, lines: list[str]) -> None:
    text = "\n".join(f"{runner}: {line}" for line in lines) or f"{runner}: no summary in its output"
    print(text)
    directory = os.environ.get("DEDUP_RUNNER_SUMMARIES")
    if directory:
        (Path(directory) / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', runner)}.txt").write_text(text + "\n")


def go_summary(output: str) -> list[str]:
    """`go test -v`: tests (and subtests) passed/failed/skipped, then each package's ok/FAIL line."""
    counts = {verdict: len(re.findall(rf"^\s*--- {verdict}: ", output, re.M)) for verdict in ("PASS", "FAIL", "SKIP")}
    packages = re.findall(r"^(?:ok|FAIL|---)\s+\S+.*$|^FAIL$", output, re.M)
    packages = [line for line in packages if not line.startswith("---")]
    return [f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped", *packages]


def node_summary(output: str) -> list[str]:
    """node --test's TAP trailer: `# tests N`, `# pass N`, `# fail N`, ..."""
    found = dict(re.findall(r"^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) (\S+)$", output, re.M))
    return [", ".join(f"{name} {value}" for name, value in found.items())] if found else []


def surefire_summary(reports: Path) -> list[str]:
    """Maven Surefire's XML reports, summed like its own `Tests run: ...` line."""
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    suites = 0
    for path in sorted(reports.glob("TEST-*.xml")):
        suite = ET.parse(path).getroot()
        suites += 1
        for name in totals:
            totals[name] += int(suite.get(name, "0") or 0)
    if not suites:
        return []
    return [
        f"Tests run: {totals['tests']}, Failures: {totals['failures']}, Errors: {totals['errors']}, "
        f"Skipped: {totals['skipped']} ({suites} classes)"
    ]
