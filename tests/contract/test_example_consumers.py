"""The example consumers run against the live sidecar and report processed == unique."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.contract.conftest import REPO

LINE = re.compile(r"processed=(\d+) duplicates_skipped=(\d+) .*unique=(\d+) max_effects_per_message=(\d+)")


def check_report(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    match = LINE.search(proc.stdout)
    assert match, proc.stdout
    processed, skipped, unique, most = map(int, match.groups())
    assert processed == unique
    assert skipped > 0
    assert most == 1


def test_python_example_consumer(contract_env: dict[str, str]) -> None:
    script = REPO / "clients" / "python" / "examples" / "consumer.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--target", contract_env["DEDUP_TARGET"]],
        env=contract_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    check_report(proc)


@pytest.mark.timeout(600)
def test_go_example_consumer(contract_env: dict[str, str]) -> None:
    go = shutil.which("go")
    assert go, "the go toolchain is not on PATH"
    proc = subprocess.run(
        [go, "run", "./examples/consumer", "-target", contract_env["DEDUP_TARGET"]],
        cwd=REPO / "clients" / "go",
        env=contract_env,
        capture_output=True,
        text=True,
        timeout=580,
    )
    check_report(proc)
