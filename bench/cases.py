"""Running one load case: start the server, run the load processes, collect throughput, latency, CPU, RSS."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

from bench.procs import GrpcServer, RedisServer, Watched


@dataclass(frozen=True)
class Case:
    name: str  # e.g. "sidecar check"
    server: str  # noop | sidecar
    mode: str  # a bench.loadgen mode
    concurrency: int
    batch: int = 1
    rate: float = 0.0  # total calls/s, 0 = closed loop
    extra: tuple[str, ...] = field(default=())  # extra `serve` flags
    redis_unix: bool = False  # the sidecar reaches Redis over its Unix socket (as the embedded default does)
    loadgen: tuple[str, ...] = field(default=())  # extra bench.loadgen flags

    @property
    def key(self) -> str:
        rate = f" @{self.rate:.0f}/s" if self.rate else ""
        extra = f" {' '.join(self.extra)}" if self.extra else ""
        unix = " redis-unix" if self.redis_unix else ""
        loadgen = f" {' '.join(self.loadgen)}" if self.loadgen else ""
        return f"{self.server} {self.mode} c={self.concurrency}{rate}{extra}{unix}{loadgen}"


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index] / 1000.0  # µs -> ms


def run_case(case: Case, redis: RedisServer, *, duration: float, clients: int, channels: int) -> dict[str, object]:
    server = GrpcServer(case.server, redis.unix_url if case.redis_unix else redis.url, case.extra).start()
    assert redis.process is not None
    redis_watch = Watched(redis.process.pid)
    try:
        per_client = max(1, case.concurrency // clients)
        command = [sys.executable, "-m", "bench.loadgen", "--target", server.target, "--mode", case.mode,
                   "--concurrency", str(per_client), "--channels", str(channels), "--batch", str(case.batch),
                   "--duration", str(duration), "--rate", str(case.rate / clients), *case.loadgen]  # fmt: skip
        load = [subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL) for _ in range(clients)]
        time.sleep(0.5)  # the load processes' warm-up: measure server CPU over the recorded part only
        cpu_server0, cpu_redis0, t0 = server.watched.cpu_s(), redis_watch.cpu_s(), time.perf_counter()
        outputs = [json.loads(p.communicate(timeout=duration + 120)[0]) for p in load]
        wall = time.perf_counter() - t0
        cpu_server, cpu_redis = server.watched.cpu_s() - cpu_server0, redis_watch.cpu_s() - cpu_redis0
        server_rss = server.watched.peak_rss_mb()
    finally:
        server.stop()
        redis.client().flushall()
    latencies = sorted(lat for out in outputs for lat in out["latencies_us"])
    elapsed = statistics.mean(out["elapsed_s"] for out in outputs)
    ids = sum(out["ids"] for out in outputs)
    return {
        "case": case.key,
        "server": case.server,
        "mode": case.mode,
        "concurrency": case.concurrency,
        "rate": case.rate,
        "ids_per_s": ids / elapsed,
        "calls_per_s": sum(out["calls"] for out in outputs) / elapsed,
        "errors": sum(out["errors"] for out in outputs),
        "transport": outputs[0].get("transport", ""),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "p999_ms": percentile(latencies, 0.999),
        "cpu": {
            "server": cpu_server / wall,
            "redis": cpu_redis / wall,
            "load": sum(out["cpu_s"] for out in outputs) / elapsed,
        },
        "cpu_us_per_id": {"server": 1e6 * cpu_server / max(ids, 1), "redis": 1e6 * cpu_redis / max(ids, 1)},
        "peak_rss_mb": {"server": server_rss, "load": max(out["peak_rss_kb"] for out in outputs) / 1024},
    }


def median_run(runs: list[dict[str, object]]) -> dict[str, object]:
    """The run with the median throughput, plus every run's throughput."""
    ordered = sorted(runs, key=lambda r: float(r["ids_per_s"]))  # type: ignore[arg-type]
    chosen = dict(ordered[len(ordered) // 2])
    chosen["runs_ids_per_s"] = [r["ids_per_s"] for r in runs]
    return chosen
