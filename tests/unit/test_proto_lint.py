"""buf lint (STANDARD rules, proto/buf.yaml) and buf breaking against main, with the
buf binary shipped in the npm package @bufbuild/buf (clients/node, scripts/deps.d/30-node.sh)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / "clients" / "node" / "node_modules" / ".bin" / "buf"


def buf(*args: str) -> subprocess.CompletedProcess[str]:
    assert BUF.exists(), f"{BUF} missing: run scripts/deps.d/30-node.sh (npm ci)"
    return subprocess.run([str(BUF), *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_buf_lint_has_no_findings() -> None:
    proc = buf("lint", "proto")
    assert proc.returncode == 0, f"buf lint findings:\n{proc.stdout}{proc.stderr}"


def test_buf_format_is_clean() -> None:
    proc = buf("format", "--diff", "--exit-code", "proto")
    assert proc.returncode == 0, f"buf format differs:\n{proc.stdout}{proc.stderr}"


def test_no_breaking_change_against_main() -> None:
    has_main = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", "refs/heads/main"], cwd=REPO, capture_output=True, timeout=30
    )
    if has_main.returncode != 0:
        pytest.skip("no local main branch to compare against (shallow or detached checkout)")
    proc = buf("breaking", "proto", "--against", ".git#branch=main,subdir=proto")
    assert proc.returncode == 0, f"breaking changes against main:\n{proc.stdout}{proc.stderr}"
