"""Redis unreachable, slow, half-open, restarted or full: errors, never a wrong outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest

from dedup.v1 import dedup_pb2 as pb
from sidecar.verify.proxy import FaultProxy, Mode
from tests.support.faults import AOF_ALWAYS, client_paused
from tests.support.inprocess import RunningSidecar, running_sidecar
from tests.support.redis_server import RedisProcess
from tests.support.waiting import eventually

FAILED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


async def _code(call: object) -> grpc.StatusCode | None:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return err.code()
    return None


async def _still_correct(sidecar: RunningSidecar, tag: str, count: int = 40) -> None:
    """After a fault heals, answers are in step with requests: NEW then DUPLICATE for each fresh id."""
    ids = [f"{tag}-{i}".encode() for i in range(count)]
    first = await asyncio.gather(*(sidecar.stub.Check(pb.CheckRequest(namespace="chaos", id=i)) for i in ids))
    second = await asyncio.gather(*(sidecar.stub.Check(pb.CheckRequest(namespace="chaos", id=i)) for i in ids))
    assert [r.outcome for r in first] == [pb.CHECK_OUTCOME_NEW] * count
    assert [r.outcome for r in second] == [pb.CHECK_OUTCOME_DUPLICATE] * count


@pytest.mark.parametrize("mode", [Mode.BLACKHOLE, Mode.HALF_OPEN, Mode.RESET])
async def test_unreachable_redis_fails_calls_and_never_answers_wrong(proxy: FaultProxy, mode: Mode) -> None:
    async with running_sidecar(proxy.url, store_timeout_s=0.5) as sidecar:
        claimed = await sidecar.stub.Claim(pb.ClaimRequest(namespace="chaos", id=b"held", lease_ms=60_000))
        assert claimed.outcome == pb.CLAIM_OUTCOME_ACQUIRED
        proxy.set(mode)
        codes = await asyncio.gather(
            *(
                _code(sidecar.stub.Claim(pb.ClaimRequest(namespace="chaos", id=f"x-{i}".encode()), timeout=1.0))
                for i in range(10)
            ),
            _code(sidecar.stub.Check(pb.CheckRequest(namespace="chaos", id=b"held"), timeout=1.0)),
        )
        assert set(codes) <= FAILED, codes
        proxy.heal()
        # Whatever reached Redis during the fault is a live lease now, never a done record.
        for i in range(10):
            reply = await sidecar.stub.Claim(pb.ClaimRequest(namespace="chaos", id=f"x-{i}".encode()))
            assert reply.outcome in (pb.CLAIM_OUTCOME_ACQUIRED, pb.CLAIM_OUTCOME_IN_PROGRESS)
            if mode is not Mode.HALF_OPEN:
                assert reply.outcome == pb.CLAIM_OUTCOME_ACQUIRED  # nothing got through
        held = await sidecar.stub.Claim(pb.ClaimRequest(namespace="chaos", id=b"held"))
        assert held.outcome == pb.CLAIM_OUTCOME_IN_PROGRESS
        await _still_correct(sidecar, f"after-{mode.value}")


async def test_half_open_claim_is_held_not_lost_and_the_holder_can_commit_on_retry(proxy: FaultProxy) -> None:
    async with running_sidecar(proxy.url, store_timeout_s=0.5) as sidecar:
        claimed = await sidecar.stub.Claim(pb.ClaimRequest(namespace="chaos", id=b"h", lease_ms=60_000))
        proxy.set(Mode.HALF_OPEN)  # the commit is applied, its reply is lost
        code = await _code(
            sidecar.stub.Commit(
                pb.CommitRequest(namespace="chaos", id=b"h", fencing_token=claimed.fencing_token), timeout=1.0
            )
        )
        assert code in FAILED
        proxy.heal()
        retried = await sidecar.stub.Commit(
            pb.CommitRequest(namespace="chaos", id=b"h", fencing_token=claimed.fencing_token)
        )
        assert retried.outcome == pb.COMMIT_OUTCOME_COMMITTED  # same holder's retry is safe
        dup = await sidecar.stub.Claim(pb.ClaimRequest(namespace="chaos", id=b"h"))
        assert dup.outcome == pb.CLAIM_OUTCOME_DUPLICATE


async def test_slow_redis_gives_deadline_exceeded_then_answers_in_step(own_redis: RedisProcess) -> None:
    async with running_sidecar(own_redis.url, store_timeout_s=5.0) as sidecar:
        with client_paused(own_redis, 1500, "ALL"):
            codes = await asyncio.gather(
                *(
                    _code(sidecar.stub.Check(pb.CheckRequest(namespace="chaos", id=f"s-{i}".encode()), timeout=0.3))
                    for i in range(10)
                )
            )
        assert set(codes) == {grpc.StatusCode.DEADLINE_EXCEEDED}
        await _still_correct(sidecar, "after-slow")


async def test_redis_restart_with_aof_always_keeps_committed_ids(redis_factory: Callable[..., RedisProcess]) -> None:
    redis = redis_factory(*AOF_ALWAYS)
    ids = [f"c-{i}".encode() for i in range(200)]
    async with running_sidecar(redis.url) as sidecar:
        claims = await sidecar.stub.ClaimBatch(
            pb.ClaimBatchRequest(items=[pb.ClaimRequest(namespace="chaos", id=i) for i in ids])
        )
        commits = await sidecar.stub.CommitBatch(
            pb.CommitBatchRequest(
                items=[
                    pb.CommitRequest(namespace="chaos", id=i, fencing_token=c.fencing_token)
                    for i, c in zip(ids, claims.results, strict=True)
                ]
            )
        )
        assert {r.outcome for r in commits.results} == {pb.COMMIT_OUTCOME_COMMITTED}
        redis.kill()  # kill -9: no shutdown save
        redis.start()
        outcomes = set()
        for attempt in range(50):  # the pool's old connections fail once each: UNAVAILABLE, then answers
            try:
                again = await sidecar.stub.ClaimBatch(
                    pb.ClaimBatchRequest(items=[pb.ClaimRequest(namespace="chaos", id=i) for i in ids])
                )
            except grpc.aio.AioRpcError as err:
                assert err.code() in FAILED  # noqa: PT017
                continue
            outcomes = {r.outcome for r in again.results if not r.HasField("error")}
            if len(outcomes) and all(not r.HasField("error") for r in again.results):
                break
            assert attempt < 49
        assert outcomes == {pb.CLAIM_OUTCOME_DUPLICATE}


async def test_redis_restart_without_persistence_forgets_ids_as_documented(own_redis: RedisProcess) -> None:
    async with running_sidecar(own_redis.url) as sidecar:
        await sidecar.stub.Check(pb.CheckRequest(namespace="chaos", id=b"volatile"))
        own_redis.kill()
        own_redis.start()
        for _ in range(50):  # old pooled connections fail once each
            try:
                reply = await sidecar.stub.Check(pb.CheckRequest(namespace="chaos", id=b"volatile"))
                break
            except grpc.aio.AioRpcError as err:
                assert err.code() in FAILED  # noqa: PT017
        assert reply.outcome == pb.CHECK_OUTCOME_NEW  # the documented loss: use AOF (always) for durability


async def test_oom_under_noeviction_gives_errors_not_wrong_answers(own_redis: RedisProcess) -> None:
    client = own_redis.client()
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + 256 * 1024)
    seen: list[bytes] = []
    async with running_sidecar(own_redis.url) as sidecar:
        code = None
        for batch in range(400):
            ids = [f"oom-{batch}-{i}-{'x' * 200}".encode()[:500] for i in range(50)]
            try:
                reply = await sidecar.stub.CheckBatch(
                    pb.CheckBatchRequest(items=[pb.CheckRequest(namespace="chaos", id=i) for i in ids])
                )
            except grpc.aio.AioRpcError as err:
                code = err.code()
                break
            errors = [r for r in reply.results if r.HasField("error")]
            if errors:
                code = grpc.StatusCode.UNAVAILABLE if errors[0].error.code == 14 else errors[0].error.code
                break
            assert {r.outcome for r in reply.results} == {pb.CHECK_OUTCOME_NEW}
            seen += ids
        assert code == grpc.StatusCode.UNAVAILABLE, "Redis never filled up"
        assert seen
        sample = seen[:: max(len(seen) // 50, 1)]
        for message in sample:  # everything marked before OOM is still a duplicate
            reply = await sidecar.stub.Check(pb.CheckRequest(namespace="chaos", id=message))
            assert reply.outcome == pb.CHECK_OUTCOME_DUPLICATE
        for i in range(20):  # near the limit: a new id is refused, or really stored; never NEW twice
            message = f"more-{i}-{'y' * 400}".encode()
            try:
                first = await sidecar.stub.Check(pb.CheckRequest(namespace="chaos", id=message))
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.UNAVAILABLE  # noqa: PT017
                continue
            assert first.outcome == pb.CHECK_OUTCOME_NEW
            reply = await sidecar.stub.Check(pb.CheckRequest(namespace="chaos", id=message))
            assert reply.outcome == pb.CHECK_OUTCOME_DUPLICATE


@pytest.mark.parametrize("mode", [Mode.BLACKHOLE, Mode.HALF_OPEN])
async def test_a_gap_shorter_than_the_store_timeout_never_shifts_answers(proxy: FaultProxy, mode: Mode) -> None:
    """Replies lost in a network gap are never handed to other requests on a pipelined connection."""
    async with running_sidecar(proxy.url, store_timeout_s=5.0) as sidecar:
        done = [f"done-{mode.value}-{i}".encode() for i in range(20)]
        for record_id in done:
            held = await sidecar.stub.Claim(pb.ClaimRequest(namespace="chaos", id=record_id))
            await sidecar.stub.Commit(
                pb.CommitRequest(namespace="chaos", id=record_id, fencing_token=held.fencing_token)
            )
        proxy.set(mode)
        during = [
            asyncio.ensure_future(sidecar.stub.Claim(pb.ClaimRequest(namespace="chaos", id=i), timeout=10))
            for i in done
        ]

        async def dropped() -> int:
            return proxy.dropped_bytes

        await eventually(dropped, lambda count: count > 0)  # the gap has swallowed something
        proxy.heal()  # well before the 5 s store timeout
        fresh = [f"fresh-{mode.value}-{i}".encode() for i in range(20)]
        after = [
            asyncio.ensure_future(sidecar.stub.Claim(pb.ClaimRequest(namespace="chaos", id=i), timeout=10))
            for i in fresh
        ]
        replies = await asyncio.gather(*during, *after, return_exceptions=True)
        outcomes = [r.outcome if isinstance(r, pb.ClaimResponse) else r.code() for r in replies]  # type: ignore[union-attr]
        # A committed id is DUPLICATE and a fresh one ACQUIRED, or the call failed: never another request's answer.
        assert all(o in (pb.CLAIM_OUTCOME_DUPLICATE, *FAILED) for o in outcomes[:20]), outcomes[:20]
        assert all(o in (pb.CLAIM_OUTCOME_ACQUIRED, *FAILED) for o in outcomes[20:]), outcomes[20:]
        await _still_correct(sidecar, f"after-gap-{mode.value}")
