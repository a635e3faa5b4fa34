"""Cluster batches: ids/s of ClaimBatch and CheckBatch of 100 random ids on a local 3-master cluster.

Self-contained: starts a 3-master/3-replica Redis Cluster (`redis-cli --cluster
create`, as tests/scale does) and, for reference, one standalone Redis; one
sidecar process on each; then drives batches of `--batch` fresh random ids
(ClaimBatch, then CheckBatch over the same ids: one NEW... and one DUPLICATE
pass) from `--concurrency` concurrent callers, in interleaved rounds, and
reports ids/s, batch latency (p50/p99) and the sidecar's CPU time per id
(/proc/<pid>/stat). The numbers depend on the machine; the cluster/standalone
ratio is the one to compare across runs.

    python bench/cluster_batches.py [--seconds 5] [--rounds 3] [--batch 100] [--concurrency 1,8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dedup.v1 import dedup_pb2 as pb  # noqa: E402
from dedup.v1 import dedup_pb2_grpc  # noqa: E402
from tests.scale.servers import LocalCluster  # noqa: E402
from tests.support.redis_server import RedisProcess  # noqa: E402
from tests.support.sidecar_process import SidecarProcess  # noqa: E402

OPS = ("ClaimBatch", "CheckBatch")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    ids: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ids / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(target: str, op: str, seconds: float, batch: int, concurrency: int) -> Result:
    result = Result()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = dedup_pb2_grpc.DedupStub(channel)
        deadline = time.perf_counter() + seconds

        async def caller() -> None:
            while time.perf_counter() < deadline:
                ids = [os.urandom(16) for _ in range(batch)]
                start = time.perf_counter()
                if op == "ClaimBatch":
                    reply = await stub.ClaimBatch(
                        pb.ClaimBatchRequest(items=[pb.ClaimRequest(namespace="bench", id=i) for i in ids])
                    )
                else:
                    reply = await stub.CheckBatch(
                        pb.CheckBatchRequest(items=[pb.CheckRequest(namespace="bench", id=i) for i in ids])
                    )
                result.latencies.append(time.perf_counter() - start)
                result.ids += batch
                result.errors += sum(1 for r in reply.results if r.HasField("error"))

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - began
    return result


def measure(sidecar: SidecarProcess, op: str, seconds: float, batch: int, concurrency: int) -> Result:
    assert sidecar.process is not None
    cpu = cpu_seconds(sidecar.process.pid)
    result = asyncio.run(drive(sidecar.target, op, seconds, batch, concurrency))
    result.cpu_s = cpu_seconds(sidecar.process.pid) - cpu
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one measured round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    parser.add_argument("--batch", type=int, default=100, help="ids per batch")
    parser.add_argument("--concurrency", default="1,8", help="concurrent callers, comma-separated values")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    cluster = LocalCluster()
    standalone = RedisProcess().start()
    sidecars: dict[str, SidecarProcess] = {}
    results: dict[tuple[str, str, int], list[Result]] = {}
    try:
        for name, url in (("cluster", cluster.url), ("standalone", standalone.url)):
            prefix = f"bench-{uuid.uuid4().hex[:6]}:"
            sidecars[name] = SidecarProcess(["--redis-url", url, "--key-prefix", prefix], cwd=str(ROOT)).start()
        for sidecar in sidecars.values():  # warm-up: connections, script caches on every master
            for op in OPS:
                measure(sidecar, op, 1.0, args.batch, max(levels))
        for _ in range(args.rounds):
            for concurrency in levels:
                for op in OPS:
                    for name, sidecar in sidecars.items():
                        key = (name, op, concurrency)
                        results.setdefault(key, []).append(measure(sidecar, op, args.seconds, args.batch, concurrency))
    finally:
        for sidecar in sidecars.values():
            sidecar.stop()
        standalone.close()
        cluster.close()

    print(f"batch={args.batch} seconds={args.seconds} rounds={args.rounds} (median round)")
    header = ("store", "op", "conc", "ids/s", "p50 ms", "p99 ms", "cpu us/id", "errors")
    print("{:<11} {:<10} {:>4} {:>8} {:>7} {:>7} {:>9} {:>6}".format(*header))
    for (name, op, concurrency), rounds in results.items():
        best = sorted(rounds, key=lambda r: r.rate)[len(rounds) // 2]
        print(
            f"{name:<11} {op:<10} {concurrency:>4} {best.rate:>8.0f} {best.quantile(0.5) * 1e3:>7.1f} "
            f"{best.quantile(0.99) * 1e3:>7.1f} {best.cpu_s / best.ids * 1e6:>9.1f} "
            f"{sum(r.errors for r in rounds):>6}"
        )
    for op in OPS:
        for concurrency in levels:
            ratio = statistics.median(r.rate for r in results[("cluster", op, concurrency)]) / statistics.median(
                r.rate for r in results[("standalone", op, concurrency)]
            )
            print(f"cluster/standalone ids/s, {op}, concurrency {concurrency}: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
