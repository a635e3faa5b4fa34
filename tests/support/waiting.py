"""Bounded polling for conditions that depend on the Redis clock (lease and window ends)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], within_s: float = 10.0) -> T:
    """Calls `probe` until `accept` holds; fails after `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        value = await probe()
        if accept(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s}s; last value: {value!r}")
        await asyncio.sleep(0.01)


async def await_state(
    stub: dedup_pb2_grpc.DedupStub, namespace: str, record_id: bytes, state: int, within_s: float = 10.0
) -> pb.InspectResponse:
    """Polls Inspect until the record is in `state` (e.g. ABSENT once its lease or window ended)."""
    request = pb.InspectRequest(namespace=namespace, id=record_id)
    return await eventually(lambda: stub.Inspect(request), lambda r: r.state == state, within_s)
