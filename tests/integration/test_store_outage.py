"""Invariant 5: store failure is never a silent answer; health follows the store."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dedup.v1 import dedup_pb2 as pb
from tests.support.inprocess import running_sidecar
from tests.support.redis_server import RedisProcess
from tests.support.waiting import eventually

POLICIES = {"namespaces": {"strict": {}, "lenient": {"on_store_error": "allow"}}}


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    if server.process is not None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.close()


async def readiness(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service="dedup.v1.Dedup"))
    return int(response.status)


async def liveness(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int((await stub.Check(health_pb2.HealthCheckRequest(service="liveness"))).status)


async def test_stopped_redis_is_unavailable_never_new_and_answers_resume(own_redis: RedisProcess) -> None:
    async with running_sidecar(own_redis.url, POLICIES) as sc:
        assert (await sc.stub.Check(pb.CheckRequest(namespace="strict", id=b"before"))).outcome == 1
        assert await readiness(sc.channel) == health_pb2.HealthCheckResponse.SERVING
        own_redis.stop()

        for call, request in (
            (sc.stub.Check, pb.CheckRequest(namespace="strict", id=b"during")),
            (sc.stub.Claim, pb.ClaimRequest(namespace="strict", id=b"during")),
            (sc.stub.Commit, pb.CommitRequest(namespace="strict", id=b"during", fencing_token=5)),
            (sc.stub.Inspect, pb.InspectRequest(namespace="strict", id=b"during")),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(request, timeout=3)  # type: ignore[operator]
            assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

        batch = await sc.stub.CheckBatch(pb.CheckBatchRequest(items=[pb.CheckRequest(namespace="lenient", id=b"b")]))
        assert batch.results[0].degraded
        # In batches a store failure is reported per item, never as an outcome.
        failed = await sc.stub.CheckBatch(pb.CheckBatchRequest(items=[pb.CheckRequest(namespace="strict", id=b"b")]))
        assert failed.results[0].error.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert failed.results[0].outcome == pb.CHECK_OUTCOME_UNSPECIFIED

        await sc.health.check_once()
        assert await readiness(sc.channel) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await liveness(sc.channel) == health_pb2.HealthCheckResponse.SERVING

        own_redis.start()
        resumed = await eventually(
            lambda: _try_check(sc.stub, b"after"), lambda outcome: outcome is not None, within_s=15
        )
        assert resumed == pb.CHECK_OUTCOME_NEW
        await sc.health.check_once()
        assert await readiness(sc.channel) == health_pb2.HealthCheckResponse.SERVING


async def _try_check(stub: object, record_id: bytes) -> int | None:
    try:
        response = await stub.Check(pb.CheckRequest(namespace="strict", id=record_id), timeout=3)  # type: ignore[attr-defined]
    except grpc.aio.AioRpcError:
        return None
    return int(response.outcome)


async def test_on_store_error_allow_answers_degraded(own_redis: RedisProcess) -> None:
    async with running_sidecar(own_redis.url, POLICIES) as sc:
        own_redis.stop()
        check = await sc.stub.Check(pb.CheckRequest(namespace="lenient", id=b"x"), timeout=3)
        assert check.outcome == pb.CHECK_OUTCOME_NEW
        assert check.degraded
        claim = await sc.stub.Claim(pb.ClaimRequest(namespace="lenient", id=b"x"), timeout=3)
        assert claim.outcome == pb.CLAIM_OUTCOME_ACQUIRED
        assert claim.degraded
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await sc.stub.Check(pb.CheckRequest(namespace="strict", id=b"x"), timeout=3)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_frozen_redis_is_deadline_exceeded_within_the_deadline(own_redis: RedisProcess) -> None:
    async with running_sidecar(own_redis.url, POLICIES, store_timeout_s=30) as sc:
        await sc.stub.Check(pb.CheckRequest(namespace="strict", id=b"warm"))
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await sc.stub.Check(pb.CheckRequest(namespace="strict", id=b"frozen"), timeout=0.5)
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            degraded = await sc.stub.Check(pb.CheckRequest(namespace="lenient", id=b"frozen"), timeout=0.5)
            assert degraded.degraded
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        # The frozen calls' outcome was unknown; the store answers truthfully again afterwards.
        after = await eventually(lambda: _try_check(sc.stub, b"frozen"), lambda o: o is not None, within_s=15)
        assert after in (pb.CHECK_OUTCOME_NEW, pb.CHECK_OUTCOME_DUPLICATE)


async def test_calls_without_a_deadline_get_the_server_side_cap(own_redis: RedisProcess) -> None:
    async with running_sidecar(own_redis.url, POLICIES, store_timeout_s=30, default_deadline=300) as sc:
        await sc.stub.Check(pb.CheckRequest(namespace="strict", id=b"warm"))
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await sc.stub.Check(pb.CheckRequest(namespace="strict", id=b"no-deadline"))  # no client deadline
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
