"""Redis memory per record: N Check-only records, N Claim+Commit records, and the floor (16-byte ids).

  python -m bench.memory [--ids 1000000] [--server PATH]
The floor is a plain `SET key <integer> NX PX` on the same key names: what any record costs.
"""

from __future__ import annotations

import asyncio
import random
import uuid

from bench.procs import RedisServer
from sidecar.domain.keys import DEFAULT_KEY_PREFIX, record_key
from sidecar.domain.store import CheckItem, ClaimItem, CommitItem
from sidecar.redis_store.factory import open_store

WINDOW_MS = 3_600_000
CHUNK = 1000


def _keys(count: int) -> list[str]:
    tag = uuid.uuid4().bytes[:8]
    return [record_key(DEFAULT_KEY_PREFIX, "bench", tag + i.to_bytes(8, "big")) for i in range(count)]


def _used(redis: RedisServer) -> int:
    return int(redis.client().info("memory")["used_memory"])


def _sample_usage(redis: RedisServer, keys: list[str]) -> float:
    client = redis.client()
    sample = random.sample(keys, min(1000, len(keys)))
    return sum(int(client.memory_usage(key, samples=0) or 0) for key in sample) / len(sample)


async def _fill(redis: RedisServer, kind: str, keys: list[str]) -> None:
    store = open_store(redis.url, timeout_s=30)
    store.use_server(redis.version())  # Checks as the sidecar sends them: without Lua on 7.0+ (ADR 0071)
    try:
        if kind == "floor":  # the same keys by plain SET NX PX of a small integer: the floor for any record
            assert store.fast is not None
            for start in range(0, len(keys), CHUNK):
                await asyncio.gather(
                    *(
                        store.fast.pipe.execute("SET", k, 1712345678901, "NX", "PX", WINDOW_MS)
                        for k in keys[start : start + CHUNK]
                    )
                )
            return
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            if kind == "check":
                await store.check([CheckItem(key, WINDOW_MS, False, False, b"") for key in chunk])
                continue
            claims = await store.claim([ClaimItem(key, 60_000, False, False, b"") for key in chunk])
            commits = [
                CommitItem(key, claim.fencing_token, WINDOW_MS, False, None)  # type: ignore[union-attr]
                for key, claim in zip(chunk, claims, strict=True)
            ]
            await store.commit(commits)
    finally:
        await store.close()


def measure(redis: RedisServer, count: int) -> dict[str, object]:
    out: dict[str, object] = {"ids": count, "redis_version": redis.version(), "key_example": _keys(1)[0]}
    for kind in ("check", "claim_commit", "floor"):
        redis.client().flushall()
        before = _used(redis)
        keys = _keys(count)
        asyncio.run(_fill(redis, kind, keys))
        after = _used(redis)
        out[kind] = {
            "info_bytes_per_record": (after - before) / count,
            "memory_usage_bytes_per_key": _sample_usage(redis, keys),
            "value_bytes": len(redis.client().get(keys[0]) or b""),
            "key_bytes": len(keys[0]),
        }
    redis.client().flushall()
    return out


def main() -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--server", default="", help="redis-server/valkey-server binary (default: redis-server)")
    args = parser.parse_args()
    redis = RedisServer(args.server).start()
    try:
        print(json.dumps(measure(redis, args.ids), indent=1))
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
