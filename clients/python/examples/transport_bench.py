"""Stream vs unary transport: claim + commit of fresh ids by many concurrent callers.

    python clients/python/examples/transport_bench.py --target 127.0.0.1:50051

For each transport, runs --concurrency asyncio tasks (and as many threads with the
sync client), each doing claim + commit of fresh ids until --ops pairs are done,
and prints pairs per second. The stream transport coalesces concurrent calls into
batch messages; the unary transport makes one RPC per call.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dedup_client import AsyncDedupClient, DedupClient


async def run_async(target: str, namespace: str, transport: Any, ops: int, concurrency: int) -> float:
    prefix = uuid.uuid4().hex[:8]
    async with AsyncDedupClient(target, transport=transport) as client:
        await client.check(namespace, f"warm-{prefix}")
        counter = iter(range(ops))

        async def worker() -> None:
            for n in counter:
                claim = await client.claim(namespace, f"{prefix}-{n}")
                await client.commit(namespace, f"{prefix}-{n}", claim.fencing_token)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ops / (time.perf_counter() - started)


def run_sync(target: str, namespace: str, transport: Any, ops: int, concurrency: int) -> float:
    prefix = uuid.uuid4().hex[:8]
    with DedupClient(target, transport=transport) as client, ThreadPoolExecutor(concurrency) as pool:
        client.check(namespace, f"warm-{prefix}")

        def one(n: int) -> None:
            claim = client.claim(namespace, f"{prefix}-{n}")
            client.commit(namespace, f"{prefix}-{n}", claim.fencing_token)

        started = time.perf_counter()
        list(pool.map(one, range(ops)))
        return ops / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--namespace", default="example.bench")
    parser.add_argument("--ops", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    for transport in ("stream", "unary"):
        aio = asyncio.run(run_async(args.target, args.namespace, transport, args.ops, args.concurrency))
        sync = run_sync(args.target, args.namespace, transport, args.ops, args.concurrency)
        print(f"transport={transport} asyncio={aio:.0f} pairs/s sync={sync:.0f} pairs/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
