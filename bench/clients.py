"""The Redis client choice (docs/adr/0070-redis-client.md): check.lua through each candidate client.

  python -m bench.clients          # valkey-glide is measured too when installed (pip install valkey-glide)
Store level, no service and no gRPC: single-id calls from 50 concurrent callers, and batches of 100
from 8 callers; prints ids/s and the CPU per id of this process and of Redis.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from bench.procs import RedisServer, Watched
from sidecar.domain.keys import record_key
from sidecar.domain.store import CheckItem
from sidecar.redis_store.factory import open_store
from sidecar.redis_store.scripts import script_sources
from sidecar.redis_store.store import _check_args

Call = Callable[[Sequence[CheckItem]], Awaitable[object]]


async def measure(redis: RedisServer, label: str, call: Call, size: int, calls: int, callers: int) -> None:
    assert redis.process is not None
    tag = uuid.uuid4().bytes[:8]
    watched = Watched(redis.process.pid)
    numbers = iter(range(calls))

    async def caller() -> None:
        for b in numbers:
            ids = (tag + (b * size + i).to_bytes(8, "big") for i in range(size))
            await call([CheckItem(record_key("dedup:", "bench", i), 3_600_000, False, False, b"") for i in ids])

    cpu0, redis0, t0 = time.process_time(), watched.cpu_s(), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    cpu, redis_cpu, wall = time.process_time() - cpu0, watched.cpu_s() - redis0, time.perf_counter() - t0
    n = calls * size
    print(
        f"{label:9s} {size:3d} ids/call, {callers:2d} callers: {n / wall:9,.0f} ids/s, "
        f"client CPU {1e6 * cpu / n:6.1f} µs/id, Redis CPU {1e6 * redis_cpu / n:5.1f} µs/id",
        flush=True,
    )
    redis.client().flushall()


async def glide_call(redis: RedisServer) -> tuple[Call, Callable[[], Awaitable[None]]] | None:
    try:
        from glide import GlideClient, GlideClientConfiguration, NodeAddress, Script
    except ImportError:
        return None
    client = await GlideClient.create(
        GlideClientConfiguration([NodeAddress("127.0.0.1", redis.port)], request_timeout=5000)
    )
    script = Script(script_sources()["check"])

    async def call(items: Sequence[CheckItem]) -> object:
        raw = [*_check_args(items), 0]  # the trailing 0: no quota counters (prelude.lua's quota_gate)
        args = [a if isinstance(a, bytes) else str(a).encode() for a in raw]
        return await client.invoke_script(script, keys=[i.key for i in items], args=args)

    return call, client.close


async def main_async(redis: RedisServer) -> None:
    fast = open_store(redis.url, timeout_s=5)
    slow = open_store(redis.url, timeout_s=5, client="redis-py")
    candidates: list[tuple[str, Call]] = [("fastpipe", fast.check), ("redis-py", slow.check)]
    glide = await glide_call(redis)
    if glide:
        candidates.append(("glide", glide[0]))
    for size, calls, callers in ((1, 20_000, 50), (100, 1_000, 8)):
        for label, call in candidates:
            await measure(redis, label, call, size, calls, callers)
    await fast.close()
    await slow.close()
    if glide:
        await glide[1]()


def main() -> None:
    redis = RedisServer().start()
    try:
        import uvloop

        uvloop.run(main_async(redis))
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
