"""Redis's own limit: redis-benchmark `SET key NX PX` on new keys, unpipelined and pipelined."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import time

from bench.procs import RedisServer, Watched


def run(redis: RedisServer, *, pipeline: int, requests: int, clients: int = 50) -> dict[str, object]:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        raise RuntimeError("redis-benchmark not found: apt-get install redis-tools")
    # __rand_int__ over 10^9 keys: (almost) every SET NX is a new key, as a first sighting is.
    # redis-benchmark reads -r with atoi: 10^12 overflowed to a keyspace of ONE key, so that
    # every SET after the first was a refused NX on an existing key (the 0.69 µs "floor" of old
    # runs). `keys_written` below proves the keyspace.
    command = [binary, "-h", "127.0.0.1", "-p", str(redis.port), "-c", str(clients), "-n", str(requests),
               "-P", str(pipeline), "-r", "1000000000", "--csv",
               "SET", "bench:__rand_int__", "0123456789abcdef", "NX", "PX", "600000"]  # fmt: skip
    assert redis.process is not None
    watched = Watched(redis.process.pid)
    cpu0, t0 = watched.cpu_s(), time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600).stdout
    elapsed = time.perf_counter() - t0
    redis_cpu = watched.cpu_s() - cpu0
    rows = list(csv.DictReader(io.StringIO(out)))
    row = rows[-1]
    keys_written = int(redis.client().dbsize())
    redis.client().flushall()
    return {
        "ids_per_s": float(row["rps"]),
        "p50_ms": float(row["p50_latency_ms"]),
        "p99_ms": float(row["p99_latency_ms"]),
        "p999_ms": None,  # redis-benchmark reports p50/p95/p99/max only
        "max_ms": float(row["max_latency_ms"]),
        "cpu": {"redis": redis_cpu / elapsed},
        "peak_rss_mb": {},
        "concurrency": clients * pipeline,
        "keys_written": keys_written,
        "cpu_us_per_id": {"redis": 1e6 * redis_cpu / requests},
    }
