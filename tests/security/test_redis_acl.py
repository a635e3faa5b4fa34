"""The minimal Redis ACL in docs/security.md is enough, and has no CONFIG: run it as written."""

from __future__ import annotations

import asyncio
import re
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

from dedup.v1 import dedup_pb2 as pb
from tests.integration.test_claim_wait import until, waiting
from tests.support.inprocess import running_sidecar
from tests.support.redis_server import RedisProcess

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def documented_acl() -> list[str]:
    match = re.search(r"^ACL SETUSER dedup .*$", DOCS.read_text(), re.MULTILINE)
    assert match, "docs/security.md lost its ACL SETUSER line"
    return shlex.split(match.group(0))


async def test_the_documented_acl_serves_every_verb_and_has_no_config(redis_server: RedisProcess) -> None:
    words = documented_acl()
    assert not [w for w in words if "config" in w.lower()], "the minimal ACL must not grant CONFIG"
    user, password = f"dedup-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    prefix = f"dedup-{uuid.uuid4().hex[:6]}:"
    mine = {"dedup": user, ">CHANGE-ME": f">{password}", "~dedup:*": f"~{prefix}*", "&dedup:*": f"&{prefix}*"}
    words = [mine.get(w, w) for w in words]
    with redis_server.client() as redis:
        redis.execute_command(*words)
    url = f"redis://{user}:{password}@127.0.0.1:{redis_server.port}/0"
    try:
        report = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "sidecar", "check-store", "--redis-url", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert report.returncode == 0, report.stdout + report.stderr
        assert "maxmemory-policy: noeviction" in report.stdout
        assert "cannot verify" not in report.stdout
        async with running_sidecar(url, key_prefix=prefix) as sc:
            assert (await sc.stub.Check(pb.CheckRequest(namespace="n", id=b"1"), timeout=10)).outcome == 1
            claim = await sc.stub.Claim(pb.ClaimRequest(namespace="n", id=b"2"), timeout=10)
            assert claim.outcome == pb.CLAIM_OUTCOME_ACQUIRED
            commit = pb.CommitRequest(namespace="n", id=b"2", fencing_token=claim.fencing_token)
            assert (await sc.stub.Commit(commit, timeout=10)).outcome == pb.COMMIT_OUTCOME_COMMITTED
            assert (await sc.stub.Inspect(pb.InspectRequest(namespace="n", id=b"2"), timeout=10)).state == 3
            assert (await sc.stub.Forget(pb.ForgetRequest(namespace="n", id=b"2"), timeout=10)).outcome == 1
            # a waiting Claim is woken by the holder's Commit: PUBLISH from the script, SUBSCRIBE by the sidecar
            holder = await sc.stub.Claim(pb.ClaimRequest(namespace="n", id=b"3"), timeout=10)
            waiter = asyncio.ensure_future(
                sc.stub.Claim(pb.ClaimRequest(namespace="n", id=b"3", wait_ms=20_000), timeout=30)
            )
            assert sc.waiters is not None
            assert sc.wake is not None
            await until(waiting(sc, 1))
            done = pb.CommitRequest(namespace="n", id=b"3", fencing_token=holder.fencing_token)
            assert (await sc.stub.Commit(done, timeout=10)).outcome == pb.COMMIT_OUTCOME_COMMITTED
            assert (await asyncio.wait_for(waiter, 10)).outcome == pb.CLAIM_OUTCOME_DUPLICATE
            assert sc.wake.subscribed.is_set()
    finally:
        with redis_server.client() as redis:
            redis.acl_deluser(user)
