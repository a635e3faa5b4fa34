"""buf lint (STANDARD rules, proto/buf.yaml) and buf breaking against the last release and the merge base, with the
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


def git(*args: str) -> str | None:
    proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def breaking_bases() -> dict[str, str]:
    """What proto/ must stay compatible with: the last release tag (v*) reachable from HEAD, and
    this change's base: the merge base with main, or, on main itself, the previous commit.
    (Comparing with main's tip compares main with itself once merged.)"""
    bases: dict[str, str] = {}
    tag = git("describe", "--tags", "--abbrev=0", "--match", "v*", "HEAD")
    if tag:
        bases[f"release {tag}"] = git("rev-parse", f"{tag}^{{commit}}") or tag
    head = git("rev-parse", "HEAD")
    merge_base = (
        git("merge-base", "HEAD", "refs/heads/main") if git("rev-parse", "--verify", "refs/heads/main") else None
    )
    if merge_base and merge_base != head:
        bases["merge base with main"] = merge_base
    elif parent := git("rev-parse", "--verify", "--quiet", "HEAD^"):
        bases["previous commit"] = parent
    return bases


def test_no_breaking_change_against_the_release_and_the_merge_base() -> None:
    bases = breaking_bases()
    if not bases:
        pytest.skip("no history to compare with (a single commit, or not a git checkout)")
    for name, commit in bases.items():
        if (
            git("cat-file", "-e", f"{commit}:proto/dedup/v1/dedup.proto") is None
            and subprocess.run(
                ["git", "cat-file", "-e", f"{commit}:proto/dedup/v1/dedup.proto"], cwd=REPO, timeout=30
            ).returncode
        ):
            continue  # the proto did not exist yet there
        proc = buf("breaking", "proto", "--against", f".git#ref={commit},subdir=proto")
        assert proc.returncode == 0, f"breaking changes against the {name} ({commit}):\n{proc.stdout}{proc.stderr}"


def test_the_base_is_never_the_commit_under_test() -> None:
    assert git("rev-parse", "HEAD") not in breaking_bases().values()
