"""The summaries scripts/test.sh prints for the Go, Node and Maven runners."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.runner_summary import go_summary, node_summary, report, surefire_summary

GO = """=== RUN   TestContract
=== RUN   TestContract/check_new
--- PASS: TestContract (0.20s)
    --- PASS: TestContract/check_new (0.01s)
--- SKIP: TestSlow (0.00s)
PASS
ok  	github.com/dedup-sidecar/dedup/clients/go	1.234s
?   	github.com/dedup-sidecar/dedup/clients/go/dedupv1	[no test files]
"""
NODE = "TAP version 13\nok 1 - x\n1..1\n# tests 42\n# suites 3\n# pass 41\n# fail 0\n# skipped 1\n# duration_ms 812.5\n"


def test_go_summary_counts_tests_and_subtests() -> None:
    assert go_summary(GO) == [
        "2 passed, 0 failed, 1 skipped",
        "ok  \tgithub.com/dedup-sidecar/dedup/clients/go\t1.234s",
    ]


def test_node_summary_is_the_tap_trailer() -> None:
    assert node_summary(NODE) == ["tests 42, suites 3, pass 41, fail 0, skipped 1, duration_ms 812.5"]


def test_surefire_summary_sums_the_reports(tmp_path: Path) -> None:
    for n, (tests, failures) in enumerate(((10, 0), (3, 1))):
        (tmp_path / f"TEST-C{n}.xml").write_text(
            f'<testsuite name="C{n}" tests="{tests}" failures="{failures}" errors="0" skipped="0"/>'
        )
    assert surefire_summary(tmp_path) == ["Tests run: 13, Failures: 1, Errors: 0, Skipped: 0 (2 classes)"]


def test_report_writes_where_test_sh_looks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUP_RUNNER_SUMMARIES", str(tmp_path))
    report("node --test", ["tests 1, pass 1"])
    assert (tmp_path / "node_--test.txt").read_text() == "node --test: tests 1, pass 1\n"
