"""Where the sidecar's CPU goes, without gRPC or load generators in the way.

  python -m bench.profile [--batches 2000] [--size 100] [--concurrency 8] [--client fastpipe|redis-py]
                          [--check-path auto|script] [--cprofile]
Drives DedupServicer's batch body (or, with --size 1, the single Check path) directly against a
private Redis; prints ids/s and µs of CPU per id in this process and in Redis.
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


async def drive(url: str, client: str, batches: int, concurrency: int, size: int, check_path: str = "auto") -> float:
    store = open_store(url, timeout_s=5, client=client, check_path=check_path)
    store.use_server(str((await store.client.info("server"))["redis_version"]))  # as the startup checks do
    servicer = DedupServicer(DedupService(store, Policies()), 5.0)
    tag = uuid.uuid4().bytes[:8]
    requests = [
        pb.CheckBatchRequest(items=[pb.CheckRequest(namespace="bench", id=tag + (b * size + i).to_bytes(8, "big"))
                                    for i in range(size)])
        for b in range(batches)
    ]  # fmt: skip
    queue = iter(requests)

    async def worker() -> None:
        for request in queue:
            if size == 1:  # the unary Check path
                response = await servicer._stream_check(request.items[0], 5.0)
                assert response.outcome == pb.CHECK_OUTCOME_NEW
                continue
            batch = await servicer._check_batch(request, 5.0, None)
            assert batch.results[0].outcome == pb.CHECK_OUTCOME_NEW

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await store.close()
    print(f"{client}: {batches * size / wall:,.0f} ids/s wall ({concurrency} callers, {size} ids per call)")
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8, help="callers")
    parser.add_argument("--size", type=int, default=100, help="ids per call (1: single-id Check)")
    parser.add_argument("--client", default="fastpipe")
    parser.add_argument("--check-path", default="auto", choices=("auto", "script"))
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
        cpu = run(drive(redis.url, args.client, args.batches, args.concurrency, args.size, args.check_path))
        redis_cpu = Watched(redis.process.pid).cpu_s() - redis_cpu0
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(25)
        ids = args.batches * args.size
        sidecar_us, redis_us = 1e6 * cpu / ids, 1e6 * redis_cpu / ids
        print(f"{args.client}: CPU per id: sidecar {sidecar_us:.2f} µs (no gRPC), redis {redis_us:.2f} µs")
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
