"""Consumer processes killed or paused while they hold a lease."""

from __future__ import annotations

import asyncio

from dedup.v1 import dedup_pb2 as pb
from sidecar.verify.history import FencedSink
from tests.support.faults import ConsumerProcess, paused
from tests.support.inprocess import RunningSidecar

LEASE_MS = 300


async def _claim_when_free(sidecar: RunningSidecar, message: bytes, timeout_s: float = 10) -> pb.ClaimResponse:
    """Claims, retrying IN_PROGRESS after retry_after_ms, as a redelivering broker would."""
    async with asyncio.timeout(timeout_s):
        while True:
            reply = await sidecar.stub.Claim(pb.ClaimRequest(namespace="chaos", id=message, lease_ms=LEASE_MS))
            if reply.outcome != pb.CLAIM_OUTCOME_IN_PROGRESS:
                return reply
            await asyncio.sleep(max(reply.retry_after_ms, 10) / 1000)


async def test_consumer_killed_between_claim_and_commit_loses_nothing(sidecar: RunningSidecar) -> None:
    effects: list[int] = []
    dead = await asyncio.to_thread(ConsumerProcess, sidecar.target, "chaos", "m-crash", 1500)
    assert dead.claim_outcome == "CLAIM_OUTCOME_ACQUIRED"
    await asyncio.to_thread(dead.kill)  # kill -9 holding the lease, before its effect and commit

    redelivered = await sidecar.stub.Claim(pb.ClaimRequest(namespace="chaos", id=b"m-crash", lease_ms=LEASE_MS))
    # not handed out twice while the dead holder's lease lasts (unless this machine took 1.5 s to get here)
    assert redelivered.outcome in (pb.CLAIM_OUTCOME_IN_PROGRESS, pb.CLAIM_OUTCOME_ACQUIRED)
    taken = (
        redelivered if redelivered.outcome == pb.CLAIM_OUTCOME_ACQUIRED else await _claim_when_free(sidecar, b"m-crash")
    )
    assert taken.outcome == pb.CLAIM_OUTCOME_ACQUIRED
    assert taken.fencing_token > dead.token
    effects.append(taken.fencing_token)
    done = await sidecar.stub.Commit(
        pb.CommitRequest(namespace="chaos", id=b"m-crash", fencing_token=taken.fencing_token)
    )
    assert done.outcome == pb.COMMIT_OUTCOME_COMMITTED
    again = await sidecar.stub.Claim(pb.ClaimRequest(namespace="chaos", id=b"m-crash"))
    assert again.outcome == pb.CLAIM_OUTCOME_DUPLICATE
    assert len(effects) == 1  # 0 lost, 0 duplicate effects


async def test_stale_holder_paused_past_its_lease_is_fenced(sidecar: RunningSidecar) -> None:
    sink = FencedSink()
    stale = await asyncio.to_thread(ConsumerProcess, sidecar.target, "chaos", "m-stale", LEASE_MS)
    assert stale.claim_outcome == "CLAIM_OUTCOME_ACQUIRED"
    with paused(stale.pid):  # a GC pause / SIGSTOP longer than the lease
        fresh = await _claim_when_free(sidecar, b"m-stale")
        assert fresh.outcome == pb.CLAIM_OUTCOME_ACQUIRED
        assert fresh.fencing_token > stale.token
        assert sink.apply("m-stale", fresh.fencing_token, 2, 0, 0)
        committed = await sidecar.stub.Commit(
            pb.CommitRequest(namespace="chaos", id=b"m-stale", fencing_token=fresh.fencing_token)
        )
        assert committed.outcome == pb.COMMIT_OUTCOME_COMMITTED
    # The stale holder wakes up: the fenced sink refuses its write, the sidecar its commit.
    assert not sink.apply("m-stale", stale.token, 1, 0, 0)
    assert await asyncio.to_thread(stale.go_on) == "COMMIT_OUTCOME_LEASE_LOST"
    assert [a.token for a in sink.applications if a.accepted] == [fresh.fencing_token]
    record = await sidecar.stub.Inspect(pb.InspectRequest(namespace="chaos", id=b"m-stale"))
    assert record.state == pb.RECORD_STATE_DONE
    assert record.fencing_token == fresh.fencing_token
