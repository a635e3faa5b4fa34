"""Telemetry overhead: the sidecar with tracing off, tracing on with the always_off sampler, and full sampling.

Self-contained: starts a real Redis, an OTLP/gRPC sink (a separate process, so
receiving spans does not steal the load generator's CPU), and one sidecar
process per mode; then drives unary Check calls (half new ids, half duplicates,
so duplicate spans carry links) from `--concurrency` concurrent callers, in
interleaved rounds, and reports the sidecar's CPU time per call (from
/proc/<pid>/stat: the least noisy number on a shared machine), throughput and
latency, as ratios to "off". Only the ratios are meant to be compared.

    python bench/telemetry_overhead.py [--seconds 5] [--rounds 3] [--concurrency 32] [--modes off,...]
                                       [--rate CALLS_PER_S] [--together] [--before TREE]

`--together` drives every sidecar at the same time in each round (with `--rate`, each at that pace),
so all of them see the same machine load: on a shared machine the only way to get ratios that
repeat (docs/observability.md, "Overhead").

`--before TREE` runs every mode a second time from the sidecar package of another
source tree (`git archive <commit> sidecar | tar -x -C TREE`), in the same
interleaved rounds, for a before/after comparison under the same machine load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
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
from tests.support.otlp_receiver import OtlpReceiver  # noqa: E402
from tests.support.redis_server import RedisProcess, free_port  # noqa: E402
from tests.support.sidecar_process import SidecarProcess  # noqa: E402

# "ratio+metrics": what issue 12 asks to keep within 15 % of "off": traces sampled at the documented
# 10 % ratio (docs/observability.md) and Prometheus metrics on.
MODES = ("off", "always_off", "always_on", "ratio+metrics")
# Not run by default: to split the cost of ratio+metrics (`--modes off,metrics,ratio,ratio+metrics`).
EXTRA_MODES = ("metrics", "ratio")


def sink() -> None:
    """`--sink`: an OTLP receiver that counts spans; prints its endpoint, then the count when stdin closes."""
    receiver = OtlpReceiver(keep=False).start()
    print(receiver.endpoint, flush=True)
    sys.stdin.read()
    print(receiver.count, flush=True)
    receiver.stop()


def mode_env(mode: str, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if mode not in ("off", "metrics"):
        env |= {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_TRACES_SAMPLER": mode,
        }
    if mode in ("ratio", "ratio+metrics"):
        env |= {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
    return env


def mode_args(mode: str) -> list[str]:
    return ["--metrics-listen", f"127.0.0.1:{free_port()}"] if mode in ("metrics", "ratio+metrics") else []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    calls: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0

    @property
    def cpu_us_per_call(self) -> float:
        return self.cpu_s / self.calls * 1e6

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(target: str, seconds: float, concurrency: int, rate: float = 0.0) -> Result:
    """Closed loop (each caller calls again as soon as it has its answer), or paced at `rate` calls/s
    in all: caller w's n-th call is due at (n * concurrency + w) / rate, or at once when late."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = dedup_pb2_grpc.DedupStub(channel)
        await stub.Check(pb.CheckRequest(namespace="bench", id=b"warm-up"))
        latencies: list[float] = []
        began = time.perf_counter()
        deadline = began + seconds
        run = uuid.uuid4().hex

        async def caller(worker: int) -> None:
            n = 0
            while time.perf_counter() < deadline:
                if rate:
                    due = began + (n * concurrency + worker) / rate
                    if due > time.perf_counter():
                        await asyncio.sleep(due - time.perf_counter())
                record_id = f"{run}-{worker}-{n // 2}".encode()  # every id is checked twice: NEW, then DUPLICATE
                start = time.perf_counter()
                await stub.Check(pb.CheckRequest(namespace="bench", id=record_id))
                latencies.append(time.perf_counter() - start)
                n += 1

        await asyncio.gather(*(caller(w) for w in range(concurrency)))
        return Result(len(latencies), time.perf_counter() - began, latencies)


async def together(sidecars: dict[str, SidecarProcess], labels: list[str], args: argparse.Namespace) -> list[Result]:
    """One round with every sidecar driven at once, each by its own callers: all of them see the
    same machine load at every moment, and each one's CPU is read over the same interval."""
    pids = [sidecars[label].process.pid for label in labels]  # type: ignore[union-attr]
    before = [cpu_seconds(pid) for pid in pids]
    results = await asyncio.gather(
        *(drive(sidecars[label].target, args.seconds, args.concurrency, args.rate) for label in labels)
    )
    for result, pid, cpu in zip(results, pids, before, strict=True):
        result.cpu_s = cpu_seconds(pid) - cpu
    return list(results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one measured round per mode")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per mode (median reported)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent callers")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="calls/s in all, paced (default: as fast as answered). Below every mode's capacity, each "
        "mode serves the same load, so CPU per call is not skewed by how much each round could batch",
    )
    parser.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated, the first is the baseline (default: %(default)s; also {', '.join(EXTRA_MODES)})",
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="drive all sidecars at the same time in each round (use with --rate) instead of one after another",
    )
    parser.add_argument(
        "--before",
        metavar="TREE",
        help="also run every mode from the sidecar package in TREE (an older commit's `git archive`), as MODE@before",
    )
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink()
        return 0
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    unknown = set(modes) - set(MODES) - set(EXTRA_MODES)
    if unknown or not modes:
        parser.error(f"--modes: unknown {', '.join(sorted(unknown)) or '(none given)'}")

    redis = RedisProcess().start()
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--sink"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert receiver.stdout is not None
    assert receiver.stdin is not None
    endpoint = receiver.stdout.readline().strip()
    # (label, mode, source tree): `python -m sidecar` imports the package from its working directory.
    runs = [(mode, mode, ROOT) for mode in modes]
    if args.before:
        runs += [(f"{mode}@before", mode, Path(args.before).resolve()) for mode in modes]
    labels = [label for label, _, _ in runs]
    sidecars: dict[str, SidecarProcess] = {}
    results: dict[str, list[Result]] = {label: [] for label in labels}
    try:
        for label, mode, tree in runs:
            prefix = f"bench-{mode}-{uuid.uuid4().hex[:6]}:"
            sidecars[label] = SidecarProcess(
                ["--redis-url", redis.url, "--key-prefix", prefix, *mode_args(mode)],
                env=mode_env(mode, endpoint),
                cwd=str(tree),
            ).start()
        for label in labels:  # warm-up, not measured: connections, script cache, first-call imports
            asyncio.run(drive(sidecars[label].target, 1.0, args.concurrency))
        for round_ in range(args.rounds):
            if args.together:
                for label, result in zip(labels, asyncio.run(together(sidecars, labels, args)), strict=True):
                    results[label].append(result)
                    line = f"{result.rate:8.0f} calls/s {result.cpu_us_per_call:6.0f} CPU us/call"
                    print(f"round {round_ + 1} {label:>10}: {line}", file=sys.stderr)
                continue
            shift = round_ % len(labels)  # the order rotates, so no mode always follows the same one
            for label in labels[shift:] + labels[:shift]:
                pid = sidecars[label].process.pid  # type: ignore[union-attr]
                cpu_before = cpu_seconds(pid)
                result = asyncio.run(drive(sidecars[label].target, args.seconds, args.concurrency, args.rate))
                result.cpu_s = cpu_seconds(pid) - cpu_before
                results[label].append(result)
                line = f"{result.rate:8.0f} calls/s {result.cpu_us_per_call:6.0f} CPU us/call"
                print(f"round {round_ + 1} {label:>10}: {line}", file=sys.stderr)
    finally:
        for process in sidecars.values():
            process.stop()
        receiver.stdin.close()
        exported = int(receiver.stdout.readline().strip() or 0)
        receiver.wait(10)
        redis.close()

    base = results[labels[0]]
    base_cpu = statistics.median(r.cpu_us_per_call for r in base)
    base_rate = statistics.median(r.rate for r in base)
    base_p50 = statistics.median(r.quantile(0.5) for r in base)
    base_p99 = statistics.median(r.quantile(0.99) for r in base)
    pace = f", paced at {args.rate:g} calls/s" if args.rate else ""
    pace += ", all modes driven at once" if args.together else ""
    print(f"{args.rounds} rounds x {args.seconds:g}s per mode, {args.concurrency} concurrent unary Check callers{pace}")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    vs = f"vs {labels[0]}"
    print(
        f"| mode | sidecar CPU us/call | CPU {vs} | CPU {vs}, median of per-round ratios | calls/s "
        f"| throughput {vs} | p50 ms | p50 {vs} | p99 {vs} |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for label in labels:
        cpu = statistics.median(r.cpu_us_per_call for r in results[label])
        rounds = zip(results[label], base, strict=True)
        paired = statistics.median(r.cpu_us_per_call / b.cpu_us_per_call for r, b in rounds)
        rate = statistics.median(r.rate for r in results[label])
        p50 = statistics.median(r.quantile(0.5) for r in results[label])
        p99 = statistics.median(r.quantile(0.99) for r in results[label])
        print(
            f"| {label} | {cpu:.0f} | {cpu / base_cpu:.3f} | {paired:.3f} | {rate:.0f} | {rate / base_rate:.3f} "
            f"| {p50 * 1000:.2f} | {p50 / base_p50:.3f} | {p99 / base_p99:.3f} |"
        )
    calls_on = sum(r.calls for label, r_ in results.items() if label.startswith("always_on") for r in r_)
    print(f"spans received by the OTLP sink: {exported} (always_on modes made {calls_on} measured calls + warm-ups)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
