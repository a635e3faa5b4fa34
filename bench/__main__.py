"""`python -m bench`: Redis, a no-op grpc.aio server and the sidecar, side by side, in one run.

  python -m bench                      # full run: 3 x 5 s per case (several minutes)
  python -m bench --smoke --out DIR    # ~1 s per case, to prove the harness works (CI)
Writes DIR/results.json, DIR/results.md and DIR/results.png.
A real pipeline (RabbitMQ, consumers, PostgreSQL) with and without the sidecar is its own module,
`python -m bench.pipeline` (docs/adr/0073-pipeline-bench.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bench import memory, redis_baseline, report
from bench.cases import Case, median_run, run_case
from bench.procs import RedisServer


def workers_supported() -> bool:
    out = subprocess.run([sys.executable, "-m", "sidecar", "serve", "--help"], capture_output=True, text=True).stdout
    return "--workers" in out


def main_cases(c: int, cb: int, workers: int, *, quick: bool = False) -> list[Case]:
    cases: list[Case] = []
    for server in ("noop", "sidecar"):
        cases += [
            Case(f"{server} Check", server, "check", c),
            Case(f"{server} Claim+Commit", server, "claim_commit", c),
            Case(f"{server} CheckBatch(100)", server, "check_batch", cb, batch=100),
            Case(f"{server} Stream Check", server, "stream", c),
            Case(f"{server} Stream CheckBatch(100)", server, "stream_batch", cb, batch=100),
            # "Helper per message": c consumers, Claim -> empty handler -> Commit through the Python client.
            Case(f"{server} Helper, stream", server, "helper_stream", c),
            Case(f"{server} Helper, unary", server, "helper_unary", c),
        ]
    # Before/after of Check without Lua (ADR 0071), and Redis on a Unix socket (the embedded default).
    script = ("--check-path", "script")
    cases += [
        Case("sidecar Check, script", "sidecar", "check", c, extra=script),
        Case("sidecar CheckBatch(100), script", "sidecar", "check_batch", cb, 100, extra=script),
        Case("sidecar Check, Redis on a Unix socket", "sidecar", "check", c, redis_unix=True),
        Case("sidecar CheckBatch(100), Redis on a Unix socket", "sidecar", "check_batch", cb, 100, redis_unix=True),
        Case("sidecar Helper, stream, Redis on a Unix socket", "sidecar", "helper_stream", c, redis_unix=True),
        # Claims that do not wait (wait_ms 0) may share ClaimBatch messages on the client's stream.
        Case("sidecar Helper, stream, wait_ms 0", "sidecar", "helper_stream", c, loadgen=("--wait-ms", "0")),
    ]
    if quick:
        return cases
    # The same load through redis-py (ADR 0070) and, when `serve --workers` exists, N workers.
    cases += [
        Case("sidecar Check, 50 callers", "sidecar", "check", 50),
        Case("sidecar Check, 50 callers, redis-py", "sidecar", "check", 50, extra=("--redis-client", "redis-py")),
        Case(
            "sidecar CheckBatch(100), redis-py", "sidecar", "check_batch", cb, 100, extra=("--redis-client", "redis-py")
        ),
        Case(
            "sidecar Stream CheckBatch(100), redis-py",
            "sidecar",
            "stream_batch",
            cb,
            100,
            extra=("--redis-client", "redis-py"),
        ),
    ]
    if workers > 1:
        extra = ("--workers", str(workers))
        cases += [
            Case(f"sidecar Check, {workers} workers", "sidecar", "check", c, extra=extra),
            Case(f"sidecar CheckBatch(100), {workers} workers", "sidecar", "check_batch", cb, 100, extra=extra),
            Case(f"sidecar Stream CheckBatch(100), {workers} workers", "sidecar", "stream_batch", cb, 100, extra=extra),
        ]
    return cases


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="1 s per case, 1 repeat, 10k-id memory test")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per case")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the median is reported")
    parser.add_argument("--concurrency", type=int, default=32, help="unary calls / stream messages in flight")
    parser.add_argument("--batch-concurrency", type=int, default=8, help="batches in flight")
    parser.add_argument("--clients", type=int, default=2, help="load-generator processes")
    parser.add_argument("--channels", type=int, default=2, help="gRPC channels per load process")
    parser.add_argument("--workers", type=int, default=2, help="sidecar workers for the N-worker cases")
    parser.add_argument("--sweep", default="1,4,16,64", help="concurrency levels for the unary Check plot")
    parser.add_argument("--memory-ids", type=int, default=1_000_000, help="records for the memory test (0: skip)")
    parser.add_argument("--out", default="bench/results", help="output directory")
    parser.add_argument("--report-only", action="store_true", help="re-render OUT/results.json to .md and .png")
    parser.add_argument("--cases", default="", help="only the cases whose name matches this regular expression")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the per-message cases only (no redis-py, N-worker, half-load, sweep or memory cases)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.duration, args.repeats, args.sweep, args.memory_ids = 1.0, 1, "1,8", 10_000
    return args


def write_reports(results: dict[str, object], out_dir: Path) -> str:
    results["ratios"] = report.ratios(results)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    markdown = report.markdown(results)
    (out_dir / "results.md").write_text(markdown)
    report.plot(results, out_dir / "results.png")
    return markdown


def main() -> int:
    args = parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        print(write_reports(json.loads((out_dir / "results.json").read_text()), out_dir))
        return 0
    workers = args.workers if workers_supported() else 1
    redis = RedisServer().start()
    results: dict[str, object] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "redis_version": redis.version(),
        "workers_supported": workers > 1,
        "python": sys.version.split()[0],
    }
    try:
        n = max(int(args.duration * 60_000), 10_000)
        results["redis"] = {
            "SET NX PX": median_run([redis_baseline.run(redis, pipeline=1, requests=n) for _ in range(args.repeats)]),
            "SET NX PX -P 16": median_run(
                [redis_baseline.run(redis, pipeline=16, requests=n * 6) for _ in range(args.repeats)]
            ),
        }
        _log(results["redis"])

        def measure(case: Case, repeats: int) -> dict[str, object]:
            runs = [
                run_case(
                    case,
                    redis,
                    duration=args.duration,
                    clients=min(args.clients, case.concurrency),
                    channels=args.channels,
                )
                for _ in range(repeats)
            ]
            chosen = median_run(runs)
            print(f"  {case.name:48s} {chosen['ids_per_s']:>10.0f} ids/s  p99 {chosen['p99_ms']:.2f} ms", flush=True)
            return chosen

        results["load_average"] = list(os.getloadavg())
        cases = {
            case.name: measure(case, args.repeats)
            for case in main_cases(args.concurrency, args.batch_concurrency, workers, quick=args.quick)
            if re.search(args.cases, case.name)
        }
        results["cases"] = cases
        results["sweep"] = []
        if not args.quick and not args.cases:
            # Latency at half of the sidecar's unary Check throughput, same offered load on both servers.
            half = float(cases["sidecar Check"]["ids_per_s"]) / 2  # type: ignore[arg-type]
            for server in ("noop", "sidecar"):
                cases[f"{server} Check at half load"] = measure(
                    Case(f"{server} Check at half load", server, "check", args.concurrency, rate=half), args.repeats
                )
            results["sweep"] = [
                measure(Case(f"{server} Check c={c}", server, "check", c), 1)
                for server in ("noop", "sidecar")
                for c in (int(x) for x in args.sweep.split(","))
            ]
        results["load_average_after"] = list(os.getloadavg())
        if args.memory_ids and not args.quick:
            results["memory"] = memory.measure(redis, args.memory_ids)
    finally:
        redis.stop()
    print(write_reports(results, out_dir))
    return 0


def _log(value: object) -> None:
    print(json.dumps(value, default=str)[:400], flush=True)


if __name__ == "__main__":
    sys.exit(main())
