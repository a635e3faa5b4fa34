"""Abuse limits: more concurrent RPCs than --max-concurrent-rpcs get RESOURCE_EXHAUSTED."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from tests.security.conftest import secure_sidecar
from tests.support.faults import client_paused
from tests.support.redis_server import RedisProcess


async def test_rpcs_beyond_the_concurrency_limit_are_resource_exhausted(
    redis_factory: Callable[..., RedisProcess],
) -> None:
    redis = redis_factory()
    async with (
        secure_sidecar(redis.url, max_concurrent_rpcs=2) as sidecar,
        grpc.aio.insecure_channel(sidecar.target) as channel,
    ):
        stub = dedup_pb2_grpc.DedupStub(channel)
        await stub.Check(pb.CheckRequest(namespace="a", id=b"warm"))
        with client_paused(redis, 1000):  # the first calls hold their slots while Redis is slow
            calls = [
                asyncio.ensure_future(stub.Check(pb.CheckRequest(namespace="a", id=f"c-{i}".encode()), timeout=5))
                for i in range(8)
            ]
            results = await asyncio.gather(*calls, return_exceptions=True)
        codes = [r.code() if isinstance(r, grpc.aio.AioRpcError) else grpc.StatusCode.OK for r in results]
        assert codes.count(grpc.StatusCode.OK) >= 1
        assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 1
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}


async def test_streams_beyond_the_concurrency_limit_are_all_resource_exhausted(
    redis_factory: Callable[..., RedisProcess],
) -> None:
    """Every refusal is RESOURCE_EXHAUSTED: in the refused message's `error`, then in the status once the
    client half-closes (an early status made grpc's asyncio client report INTERNAL, grpc/grpc#36066)."""
    redis = redis_factory()
    limit, streams = 4, 500
    exhausted = grpc.StatusCode.RESOURCE_EXHAUSTED
    async with (
        secure_sidecar(redis.url, max_concurrent_rpcs=limit) as sidecar,
        grpc.aio.insecure_channel(sidecar.target) as channel,
    ):
        stub = dedup_pb2_grpc.DedupStub(channel)
        release, all_settled = asyncio.Event(), asyncio.Event()
        first: list[str] = []

        async def held_open(n: int) -> tuple[str, grpc.StatusCode]:
            async def requests():  # type: ignore[no-untyped-def]
                yield pb.StreamRequest(correlation_id=n, check=pb.CheckRequest(namespace="a", id=f"s-{n}".encode()))
                await release.wait()  # then half-close

            call = stub.Stream(requests(), timeout=30)
            answer, status = "none", grpc.StatusCode.OK
            try:
                async for reply in call:
                    if answer == "none":
                        answer = "refused" if reply.error.code == exhausted.value[0] else "served"
                        first.append(answer)
                        if len(first) == streams:  # every stream answered (held open) or refused
                            all_settled.set()
            except grpc.aio.AioRpcError as err:
                status = err.code()
            return answer, status

        tasks = [asyncio.ensure_future(held_open(n)) for n in range(streams)]
        await asyncio.wait_for(all_settled.wait(), 30)
        release.set()
        results = await asyncio.gather(*tasks)
    assert results.count(("served", grpc.StatusCode.OK)) == limit, results
    assert results.count(("refused", exhausted)) == streams - limit, set(results)


async def test_a_refused_stream_is_admitted_when_a_slot_frees(redis_factory: Callable[..., RedisProcess]) -> None:
    redis = redis_factory()
    async with (
        secure_sidecar(redis.url, max_concurrent_rpcs=1) as sidecar,
        grpc.aio.insecure_channel(sidecar.target) as channel,
    ):
        stub = dedup_pb2_grpc.DedupStub(channel)
        holder_done, second = asyncio.Event(), asyncio.Queue[pb.StreamRequest | None]()

        async def holder_requests():  # type: ignore[no-untyped-def]
            yield pb.StreamRequest(correlation_id=1, check=pb.CheckRequest(namespace="a", id=b"holder"))
            await holder_done.wait()

        async def waiting_requests():  # type: ignore[no-untyped-def]
            while (m := await second.get()) is not None:
                yield m

        holder = stub.Stream(holder_requests(), timeout=30)
        holder_replies = holder.__aiter__()
        assert (await holder_replies.__anext__()).check.outcome == pb.CHECK_OUTCOME_NEW
        waiting = stub.Stream(waiting_requests(), timeout=30).__aiter__()
        second.put_nowait(pb.StreamRequest(correlation_id=2, check=pb.CheckRequest(namespace="a", id=b"w1")))
        refused = await asyncio.wait_for(waiting.__anext__(), 10)
        assert refused.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        holder_done.set()  # the holder half-closes: its slot frees
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(holder_replies.__anext__(), 10)
        second.put_nowait(pb.StreamRequest(correlation_id=3, check=pb.CheckRequest(namespace="a", id=b"w2")))
        admitted = await asyncio.wait_for(waiting.__anext__(), 10)
        assert admitted.check.outcome == pb.CHECK_OUTCOME_NEW, admitted
        second.put_nowait(None)
