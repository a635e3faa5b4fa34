"""The Node client's own suite (`npm test` in clients/node: every contract scenario over the
stream transport and again over unary calls, processOnce, the stream transport against scripted
servers, the sink helpers on PGlite, trace propagation) and its example consumer, against this harness."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.contract.conftest import REPO

NODE_DIR = REPO / "clients" / "node"


def npm() -> str:
    path = shutil.which("npm")
    assert path, "npm is not on PATH (scripts/deps.d/30-node.sh needs Node.js >= 20)"
    assert (NODE_DIR / "node_modules").is_dir(), "clients/node/node_modules missing: run scripts/deps.d/30-node.sh"
    return path


@pytest.mark.timeout(300)
def test_npm_test_passes(contract_env: dict[str, str]) -> None:
    proc = subprocess.run([npm(), "test"], cwd=NODE_DIR, env=contract_env, capture_output=True, text=True, timeout=280)
    print(proc.stdout[-4000:], proc.stderr[-4000:])
    assert proc.returncode == 0, f"npm test failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-4000:]}"
    assert re.search(r"^# pass [1-9]\d*$", proc.stdout, re.M), "node --test ran no test"
    assert re.search(r"^# fail 0$", proc.stdout, re.M)


@pytest.mark.timeout(120)
def test_example_consumer_processes_each_unique_message_once(contract_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [npm(), "run", "-s", "example"], cwd=NODE_DIR, env=contract_env, capture_output=True, text=True, timeout=110
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.search(r"unique=(\d+) processed=(\d+) duplicates_skipped=(\d+)", proc.stdout)
    assert m, proc.stdout
    unique, processed, skipped = map(int, m.groups())
    assert processed == unique
    assert skipped > 0
