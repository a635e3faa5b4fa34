"""Invariant 4: fencing tokens strictly increase whatever the Redis clock does.

The high-water mark of the record's slot is moved far ahead of the clock (as a clock step back, or a
failover to a node whose clock is behind, would leave it); every later grant must still exceed it, also
an immediate re-claim after Release or Forget.
"""

from __future__ import annotations

import time

from dedup.v1 import dedup_pb2 as pb
from sidecar.domain.keys import fence_base, record_key
from sidecar.redis_store.slot_tags import in_slot_of
from tests.support.inprocess import RunningSidecar
from tests.support.redis_server import RedisProcess

AHEAD_US = 3_600 * 1_000_000  # an hour ahead of the server clock


async def claim(sc: RunningSidecar, record: bytes) -> int:
    reply = await sc.stub.Claim(pb.ClaimRequest(namespace="payments", id=record), timeout=10)
    assert reply.outcome == pb.CLAIM_OUTCOME_ACQUIRED
    return int(reply.fencing_token)


async def test_tokens_exceed_a_high_water_mark_ahead_of_the_clock(
    sidecar: RunningSidecar, redis_server: RedisProcess
) -> None:
    record = b"order-high-water"
    fence = in_slot_of(fence_base(sidecar.key_prefix), record_key(sidecar.key_prefix, "payments", record))
    high = int(time.time() * 1_000_000) + AHEAD_US
    with redis_server.client() as redis:
        redis.set(fence, high)

    first = await claim(sidecar, record)
    assert first == high + 1
    await sidecar.stub.Release(pb.ReleaseRequest(namespace="payments", id=record, fencing_token=first), timeout=10)
    second = await claim(sidecar, record)  # at once, the clock still an hour behind
    assert second == first + 1
    await sidecar.stub.Forget(pb.ForgetRequest(namespace="payments", id=record), timeout=10)
    third = await claim(sidecar, record)
    assert third == second + 1

    # The stale holders stay fenced off.
    stale = await sidecar.stub.Commit(
        pb.CommitRequest(namespace="payments", id=record, fencing_token=second), timeout=10
    )
    assert stale.outcome == pb.COMMIT_OUTCOME_LEASE_LOST
    with redis_server.client() as redis:
        assert int(redis.get(fence) or 0) == third


async def test_tokens_follow_the_clock_when_it_is_ahead(sidecar: RunningSidecar) -> None:
    before_us = int(time.time() * 1_000_000)
    tokens = [await claim(sidecar, f"fresh-{n}".encode()) for n in range(5)]
    assert all(token > before_us - 60_000_000 for token in tokens)  # microseconds of the server clock


async def test_a_batch_grants_increasing_tokens_for_ids_in_one_slot(sidecar: RunningSidecar) -> None:
    prefix = sidecar.key_prefix
    by_fence: dict[str, list[bytes]] = {}
    n = 0
    while not any(len(ids) >= 3 for ids in by_fence.values()):  # ids whose records share a slot
        record = f"same-slot-{n}".encode()
        by_fence.setdefault(in_slot_of(fence_base(prefix), record_key(prefix, "payments", record)), []).append(record)
        n += 1
    ids = next(ids for ids in by_fence.values() if len(ids) >= 3)[:3]
    reply = await sidecar.stub.ClaimBatch(
        pb.ClaimBatchRequest(items=[pb.ClaimRequest(namespace="payments", id=i) for i in ids]), timeout=10
    )
    tokens = [int(r.fencing_token) for r in reply.results]
    assert tokens == sorted(set(tokens)), "one script call: each grant above the previous one's"
