"""The Go client's own test suite (`go test ./...` in clients/go), including the
contract scenarios, against this harness. Fails if go test fails."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.contract.conftest import REPO
from tests.support.runner_summary import go_summary, report

GO_DIR = REPO / "clients" / "go"


@pytest.mark.timeout(600)  # a cold build of grpc-go on 2 cores; cached builds take seconds
def test_go_test_passes(contract_env: dict[str, str]) -> None:
    go = shutil.which("go")
    assert go, "the go toolchain is not on PATH (scripts/deps.d/20-go.sh needs it)"
    proc = subprocess.run(
        [go, "test", "-v", "-count=1", "-timeout", "300s", "./..."],
        cwd=GO_DIR,
        env=contract_env,
        capture_output=True,
        text=True,
        timeout=580,
    )
    print(proc.stdout[-4000:], proc.stderr[-4000:])
    report("go test", go_summary(proc.stdout))
    assert proc.returncode == 0, f"go test failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"
