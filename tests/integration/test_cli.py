"""The operator commands against a running sidecar: readable output and exit codes for scripts."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.inprocess import RunningSidecar


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sidecar", *args], capture_output=True, text=True, timeout=60)


async def test_operator_commands_and_exit_codes(sidecar: RunningSidecar) -> None:
    import asyncio

    t = ("--target", sidecar.target)

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(cli, *args, *t)

    new = await run("check", "orders", "o-1")
    assert (new.returncode, new.stdout.splitlines()[0]) == (0, "NEW")
    dup = await run("check", "orders", "o-1")
    assert (dup.returncode, dup.stdout.splitlines()[0]) == (10, "DUPLICATE")
    assert "age_ms" in dup.stdout

    claimed = await run("claim", "jobs", "j-1", "--json")
    assert claimed.returncode == 0
    body = json.loads(claimed.stdout)
    assert body["outcome"] == "CLAIM_OUTCOME_ACQUIRED"
    token = body["fencing_token"]
    busy = await run("claim", "jobs", "j-1")
    assert (busy.returncode, busy.stdout.splitlines()[0]) == (11, "IN_PROGRESS")
    lost = await run("release", "jobs", "j-1", "--token", str(int(token) + 1))
    assert (lost.returncode, lost.stdout.splitlines()[0]) == (13, "LEASE_LOST")
    done = await run("commit", "jobs", "j-1", "--token", token, "--result", "ok")
    assert (done.returncode, done.stdout.splitlines()[0]) == (0, "COMMITTED")
    inspected = await run("inspect", "jobs", "j-1")
    assert (inspected.returncode, inspected.stdout.splitlines()[0]) == (0, "DONE")

    conflict = await run("check", "orders", "o-2", "--fingerprint", "a")
    assert conflict.returncode == 0
    conflict = await run("check", "orders", "o-2", "--fingerprint", "b")
    assert (conflict.returncode, conflict.stdout.splitlines()[0]) == (12, "CONFLICT")

    hex_id = await run("check", "orders", "00ff10", "--hex")
    assert hex_id.returncode == 0
    forgot = await run("forget", "orders", "o-1")
    assert (forgot.returncode, forgot.stdout.splitlines()[0]) == (0, "FORGOTTEN")
    absent = await run("forget", "orders", "o-1")
    assert (absent.returncode, absent.stdout.splitlines()[0]) == (14, "ABSENT")

    bad = await run("check", "Not Valid", "x")
    assert bad.returncode == 3
    assert "INVALID_ARGUMENT" in bad.stderr


def test_unreachable_sidecar_is_exit_3() -> None:
    result = cli("check", "orders", "x", "--target", "127.0.0.1:1", "--timeout", "2")
    assert result.returncode == 3
    assert "UNAVAILABLE" in result.stderr or "DEADLINE_EXCEEDED" in result.stderr
