"""A revoked bearer token stops working on a Stream opened before; old connections are closed by age."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from tests.security.conftest import secure_sidecar
from tests.support.redis_server import RedisProcess

POLICIES = {"namespaces": {"a": {"allowed_identities": ["token:team-a"]}}}
DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]


class Feed:
    """A Stream's request side that sends one message at a time, when asked."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[pb.StreamRequest | None] = asyncio.Queue()

    async def __aiter__(self) -> AsyncIterator[pb.StreamRequest]:
        while (message := await self.queue.get()) is not None:
            yield message


async def test_a_revoked_token_is_refused_on_an_open_stream(redis_server: RedisProcess, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    (tokens / "team-a").write_text("token-of-a")
    async with (
        secure_sidecar(redis_server.url, POLICIES, auth_tokens_dir=str(tokens)) as sidecar,
        grpc.aio.insecure_channel(sidecar.target) as channel,
    ):
        feed = Feed()
        call = dedup_pb2_grpc.DedupStub(channel).Stream(
            feed.__aiter__(), metadata=(("authorization", "Bearer token-of-a"),), timeout=60
        )
        replies = call.__aiter__()

        async def send(n: int) -> pb.StreamResponse:
            feed.queue.put_nowait(
                pb.StreamRequest(correlation_id=n, check=pb.CheckRequest(namespace="a", id=b"%d" % n))
            )
            return await asyncio.wait_for(replies.__anext__(), 10)

        assert (await send(1)).check.outcome == pb.CHECK_OUTCOME_NEW
        (tokens / "team-a").unlink()  # revoked
        deadline, n = time.monotonic() + 15, 1
        while True:  # the directory is re-read at most every second: each message is a real call
            n += 1
            reply = await send(n)
            if reply.error.code == DENIED:
                break
            assert time.monotonic() < deadline, "the revoked token still works on the open stream"
        assert (await send(n + 1)).error.code == DENIED  # and stays refused
        feed.queue.put_nowait(None)


async def test_connections_past_their_maximum_age_are_closed(redis_server: RedisProcess) -> None:
    async with (
        secure_sidecar(redis_server.url, max_connection_age=300, max_connection_age_grace=300) as sidecar,
        grpc.aio.insecure_channel(sidecar.target) as channel,
    ):
        feed = Feed()
        call = dedup_pb2_grpc.DedupStub(channel).Stream(feed.__aiter__(), timeout=30)
        feed.queue.put_nowait(pb.StreamRequest(correlation_id=1, check=pb.CheckRequest(namespace="a", id=b"age")))
        replies = call.__aiter__()
        assert (await asyncio.wait_for(replies.__anext__(), 10)).check.outcome == pb.CHECK_OUTCOME_NEW
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as ended:  # nothing more is sent: only the age ends it
            await asyncio.wait_for(replies.__anext__(), 20)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE, ended.value
        assert time.monotonic() - started < 15
