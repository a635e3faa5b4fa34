"""Where the sidecar's CPU goes for CheckBatch(100), without gRPC or other processes in the way.

  python -m bench.profile [--batches 2000] [--client fastpipe|redis-py] [--cprofile]
Drives DedupServicer's batch body directly against a private Redis and prints µs of CPU per id.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
import uuid

from bench.procs import RedisServer, Watched
from dedup.v1 import dedup_pb2 as pb
from sidecar.domain.policy import BUILT_IN_POLICIES, PolicySet
from sidecar.redis_store.factory import open_store
from sidecar.service import DedupService
from sidecar.transport.servicer import DedupServicer


class Policies:
    def current(self) -> PolicySet:
        return BUILT_IN_POLICIES


async def drive(url: str, client: str, batches: int, concurrency: int) -> float:
    store = open_store(url, timeout_s=5, client=client)
    servicer = DedupServicer(DedupService(store, Policies()), 5.0)
    tag = uuid.uuid4().bytes[:8]
    requests = [
        pb.CheckBatchRequest(items=[pb.CheckRequest(namespace="bench", id=tag + (b * 100 + i).to_bytes(8, "big"))
                                    for i in range(100)])
        for b in range(batches)
    ]  # fmt: skip
    queue = iter(requests)

    async def worker() -> None:
        for request in queue:
            response = await servicer._check_batch(request, 5.0, None)
            assert response.results[0].outcome == pb.CHECK_OUTCOME_NEW

    cpu0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu = time.process_time() - cpu0
    await store.close()
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--client", default="fastpipe")
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--sort", default="tottime")
    args = parser.parse_args()
    redis = RedisServer().start()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        profiler = cProfile.Profile() if args.cprofile else None
        if profiler:
            profiler.enable()
        assert redis.process is not None
        redis_cpu0 = Watched(redis.process.pid).cpu_s()
        cpu = run(drive(redis.url, args.client, args.batches, args.concurrency))
        redis_cpu = Watched(redis.process.pid).cpu_s() - redis_cpu0
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(25)
        ids = args.batches * 100
        sidecar_us, redis_us = 1e6 * cpu / ids, 1e6 * redis_cpu / ids
        print(f"{args.client}: CPU per id: sidecar {sidecar_us:.2f} µs (no gRPC), redis {redis_us:.2f} µs")
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
