"""The Kafka examples' emit rule (ADR 0100) as unit tests: `go test` of clients/go/examples/kafka.

The Go example keeps the rule in one pure function (decide.go): emit for PROCESSED and for a
DUPLICATE whose stored result names this very record; nothing for a DUPLICATE naming another
record or LEASE_LOST; dead letters for CONFLICT; abort for IN_PROGRESS or an unreadable result.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.pipeline.processes import ROOT

pytestmark = pytest.mark.timeout(600)


def test_go_kafka_example_emit_rule() -> None:
    assert shutil.which("go"), "the go toolchain is required (scripts/deps.d/20-go.sh)"
    done = subprocess.run(
        ["go", "test", "-count=1", "-run", "TestDecide", "."],
        cwd=ROOT / "clients/go/examples/kafka",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.startswith("ok"), done.stdout
