"""The benchmark harness runs end to end (smoke-sized) and writes well-formed results. No timing asserts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import main_cases

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_smoke_run_reports_every_case(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    if shutil.which("redis-benchmark") is None:
        pytest.skip("redis-benchmark (apt redis-tools) is not installed")
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())

    assert set(results["redis"]) == {"SET NX PX", "SET NX PX -P 16"}
    for name, baseline in results["redis"].items():  # new keys, not one key over and over
        assert baseline["keys_written"] > 1000, name
    workers = results["settings"]["workers"] if results["workers_supported"] else 1
    expected = {case.name for case in main_cases(32, 8, workers)}
    expected |= {"noop Check at half load", "sidecar Check at half load"}
    assert set(results["cases"]) == expected
    for name, case in results["cases"].items():
        assert case["ids_per_s"] > 0, name
        assert case["errors"] == 0, name
        for key in ("p50_ms", "p99_ms", "p999_ms"):
            assert case[key] > 0, (name, key)
        assert set(case["cpu"]) == {"server", "redis", "load"}
        assert case["peak_rss_mb"]["server"] > 0
        if "Helper" in name:
            assert case["transport"] in ("stream", "unary"), name
    assert {c["server"] for c in results["sweep"]} == {"noop", "sidecar"}
    for name, ratio in results["ratios"]["per_case"].items():
        assert ratio["vs_noop"] > 0, name
    assert len(results["ratios"]["targets"]) >= 6
    memory = results["memory"]
    for kind in ("check", "claim_commit"):
        assert memory[kind]["memory_usage_bytes_per_key"] > 0
    assert memory["check"]["value_bytes"] < memory["claim_commit"]["value_bytes"]  # the compact record
    assert "| target |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # docs/performance.md's three-run table, from this run given twice
    table = subprocess.run(
        [sys.executable, "-m", "bench.runs_table", str(tmp_path), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "| target | wanted | run 1 | run 2 | met |" in table
    for target in results["ratios"]["targets"]:
        assert f"| {target['target']} |" in table
    for name in results["cases"]:
        assert f"| {name} |" in table
