"""The pipeline bench (bench/pipeline.py) runs end to end, smoke-sized, and its sink is exact. No timing asserts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import postgres, rabbitmq

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pipeline_smoke_run_is_exact(tmp_path: Path) -> None:
    if not (rabbitmq.available() and postgres.available()):
        pytest.fail("RabbitMQ or PostgreSQL missing: run scripts/deps.d/60-pipeline.sh")
    run = subprocess.run(
        [sys.executable, "-m", "bench.pipeline", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())

    rounds = results["rounds"]
    assert [(r["repeat"], r["mode"]) for r in rounds] == [(1, "plain"), (1, "dedup")]
    for r in rounds:
        assert r["problems"] == [], r["mode"]
        check = r["check"]
        assert check["exact"], r["mode"]
        assert check["rows"] == check["distinct"] == r["messages"] == 500, r["mode"]
        assert check["queue_left"] == 0, r["mode"]
        assert check["acks"] == 500, r["mode"]
        assert r["msgs_per_s"] > 0
        assert set(r["cpu_us_per_msg"]) == {"sidecar", "redis", "postgres", "rabbitmq", "consumers"}
        assert r["cpu_us_per_msg"]["consumers"] > 0
        assert r["cpu_us_per_msg"]["postgres"] > 0
    dedup = rounds[1]
    assert dedup["check"]["dedup_applied"] == 500  # mark_applied ran in every effect's transaction
    assert dedup["transport"] == ["stream"]  # the helper's default transport
    assert dedup["cpu_us_per_msg"]["sidecar"] > 0
    assert dedup["cpu_us_per_msg"]["redis"] > 0
    summary = results["summary"]
    assert summary["target"] == 0.6
    assert summary["ratio"] > 0
    assert isinstance(summary["met"], bool)
    assert "dedup / plain" in (tmp_path / "results.md").read_text()
