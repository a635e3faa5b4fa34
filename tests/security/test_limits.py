"""Abuse limits: more concurrent RPCs than --max-concurrent-rpcs get RESOURCE_EXHAUSTED."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc

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
    """Every refusal is RESOURCE_EXHAUSTED (grpc's own limit answered many streams INTERNAL)."""
    redis = redis_factory()
    limit, streams = 4, 500
    async with (
        secure_sidecar(redis.url, max_concurrent_rpcs=limit) as sidecar,
        grpc.aio.insecure_channel(sidecar.target) as channel,
    ):
        stub = dedup_pb2_grpc.DedupStub(channel)
        release, all_settled = asyncio.Event(), asyncio.Event()
        ended: list[grpc.StatusCode] = []

        async def held_open(n: int) -> grpc.StatusCode:
            async def requests():  # type: ignore[no-untyped-def]
                yield pb.StreamRequest(correlation_id=n, check=pb.CheckRequest(namespace="a", id=f"s-{n}".encode()))
                await release.wait()

            call = stub.Stream(requests(), timeout=30)
            code = grpc.StatusCode.OK
            try:
                async for _ in call:
                    break  # answered: the stream holds its slot until `release`
            except grpc.aio.AioRpcError as err:
                code = err.code()
            ended.append(code)
            if len(ended) == streams:  # every stream answered (held open) or refused
                all_settled.set()
            if code == grpc.StatusCode.OK:
                await release.wait()
                call.cancel()
            return code

        tasks = [asyncio.ensure_future(held_open(n)) for n in range(streams)]
        await asyncio.wait_for(all_settled.wait(), 30)
        release.set()
        codes = await asyncio.gather(*tasks)
    assert codes.count(grpc.StatusCode.OK) == limit, codes
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == streams - limit, codes
