"""`python -m bench.pipeline`: a RabbitMQ -> PostgreSQL pipeline, with and without the sidecar, in one run.

  python -m bench.pipeline --out DIR                 # 20,000 orders, 4 consumers, 3 x (plain, dedup)
  python -m bench.pipeline --smoke --out DIR         # 500 orders, 1 x (plain, dedup): what CI runs
Starts a private RabbitMQ, PostgreSQL, Redis and sidecar (`dedup-sidecar serve`, default settings),
then per round publishes N distinct orders (no duplicates) to a fresh queue and lets 4 consumer
processes (bench/pipeline_consumer.py, prefetch 20, manual acks) drain it, in two modes, interleaved:
plain (one PostgreSQL transaction per order) and dedup (the same transaction through the shipped
EffectivelyOnce helper with mark_applied). msgs/s is measured in the sink, from the first order row
to the last; CPU per message of every process tree from the consumers' go to the last row.
Writes DIR/results.json and DIR/results.md. Run it from the repository root (it imports tests.support).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import psycopg

from bench.procs import GrpcServer, RedisServer, Watched
from tests.support import rabbitmq
from tests.support.postgres import PostgresProcess
from tests.support.rabbitmq import RabbitMQProcess

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "clients/python/examples/rabbitmq/schema.sql"
TARGET_RATIO = 0.6  # issue 12: dedup msgs/s >= 0.6 x plain msgs/s, same run
FRAME = re.compile(r"\((?:[^()]*/)?([^/():]+):\d+\)$")
PY_SPY = (
    str(Path(sys.executable).with_name("py-spy")) if Path(sys.executable).with_name("py-spy").exists() else "py-spy"
)
PROCESSES = ("sidecar", "redis", "postgres", "rabbitmq", "consumers")


class PipelineError(RuntimeError):
    """A round did not complete or its sink is not exact."""


@dataclass
class Services:
    rabbit: RabbitMQProcess
    pg: PostgresProcess
    redis: RedisServer
    sidecar: GrpcServer

    def watched(self) -> dict[str, list[Watched]]:
        """The process trees whose CPU we report (consumers are added per round)."""
        assert self.rabbit.server is not None
        assert self.rabbit.epmd is not None
        assert self.redis.process is not None
        assert self.sidecar.process is not None
        postmaster = int((self.pg.data / "postmaster.pid").read_text().split()[0])
        return {
            "sidecar": [Watched(self.sidecar.process.pid)],
            "redis": [Watched(self.redis.process.pid)],
            "postgres": [Watched(postmaster)],  # the postmaster and every backend
            "rabbitmq": [Watched(self.rabbit.server.pid), Watched(self.rabbit.epmd.pid)],
        }


def start_services() -> Services:
    if not rabbitmq.available():
        raise SystemExit("RabbitMQ not installed (scripts/deps.d/60-pipeline.sh installs it)")
    pg = PostgresProcess("bench")
    rabbit = RabbitMQProcess()
    redis = RedisServer()
    sidecar = GrpcServer("sidecar", redis.url)
    try:
        with ThreadPoolExecutor(1) as pool:
            rabbit_started = pool.submit(rabbit.start)  # the slowest to start: meanwhile, the others
            pg.start()
            redis.start()
            sidecar.start()
            rabbit_started.result()
    except BaseException:
        sidecar.stop()
        redis.stop()
        rabbit.close()
        pg.close()
        raise
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute(SCHEMA.read_text())  # type: ignore[arg-type,unused-ignore]
    return Services(rabbit, pg, redis, sidecar)


def stop_services(services: Services) -> None:
    services.sidecar.stop()
    services.redis.stop()
    services.rabbit.close()
    services.pg.close()


def publish(amqp_url: str, queue: str, ids: list[str], timeout_s: float) -> None:
    """Persistent messages, the id in `message_id`; returns once the broker holds all of them."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        for n, message_id in enumerate(ids):
            body = json.dumps({"id": message_id, "amount_cents": 100 + n % 900}).encode()
            props = pika.BasicProperties(message_id=message_id, delivery_mode=pika.DeliveryMode.Persistent)
            channel.basic_publish("", queue, body, props)
        deadline = time.monotonic() + timeout_s
        while channel.queue_declare(queue, durable=True, passive=True).method.message_count < len(ids):
            if time.monotonic() > deadline:
                raise PipelineError(f"the broker did not take {len(ids)} messages in {timeout_s:.0f} s")
            time.sleep(0.1)
    finally:
        connection.close()


def queue_left(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        left = int(channel.queue_declare(queue, durable=True, passive=True).method.message_count)
        channel.queue_delete(queue)
        return left
    finally:
        connection.close()


def cpu_snapshot(trees: dict[str, list[Watched]]) -> dict[str, float]:
    return {name: sum(w.cpu_s() for w in watched) for name, watched in trees.items()}


def run_round(services: Services, mode: str, repeat: int, args: argparse.Namespace) -> dict[str, Any]:
    n = args.messages
    queue, namespace, prefix = f"bench-{repeat}-{mode}", f"bench.{repeat}.{mode}", f"r{repeat}-{mode}"
    ids = [f"{prefix}-{i}" for i in range(n)]
    with psycopg.connect(services.pg.dsn, autocommit=True) as db:
        db.execute("TRUNCATE order_effect, dedup_applied")
        publish(services.rabbit.url, queue, ids, timeout_s=120)
        command = [sys.executable, "-m", "bench.pipeline_consumer", "--mode", mode, "--amqp-url", services.rabbit.url,
                   "--queue", queue, "--pg-dsn", services.pg.dsn, "--target", services.sidecar.target,
                   "--namespace", namespace, "--prefetch", str(args.prefetch),
                   "--transport", args.transport, "--threads", str(args.threads)]  # fmt: skip
        profilers: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
        consumers = [
            subprocess.Popen([*command, "--name", f"c{k}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for k in range(args.consumers)
        ]
        try:
            for consumer in consumers:  # connected to RabbitMQ, PostgreSQL (and the sidecar's channel)
                assert consumer.stdout is not None
                if consumer.stdout.readline().strip() != "ready":
                    raise PipelineError(f"a {mode} consumer did not start (exit {consumer.wait(30)})")
            trees = {**services.watched(), "consumers": [Watched(c.pid) for c in consumers]}
            profilers = _start_profilers(services, consumers[0], f"{mode}-r{repeat}", args.py_spy)
            load_before = os.getloadavg()
            cpu0, t0 = cpu_snapshot(trees), time.perf_counter()
            for consumer in consumers:
                assert consumer.stdin is not None
                consumer.stdin.write("go\n")
                consumer.stdin.flush()
            deadline = time.monotonic() + args.round_timeout
            while (rows := _count(db)) < n:
                if time.monotonic() > deadline:
                    raise PipelineError(f"{mode} round {repeat}: {rows}/{n} orders in the sink after the timeout")
                if any(c.poll() is not None for c in consumers):
                    raise PipelineError(f"{mode} round {repeat}: a consumer exited with {rows}/{n} orders done")
                time.sleep(0.1)
            wall = time.perf_counter() - t0
            cpu = {name: value - cpu0[name] for name, value in cpu_snapshot(trees).items()}
            load_after = os.getloadavg()
        finally:
            profiles = _stop_profilers(profilers)
            reports = _stop(consumers)
        left = queue_left(services.rabbit.url, queue)
        check = _check(db, ids, namespace if mode == "dedup" else "")
        first, last = db.execute("SELECT min(at), max(at) FROM order_effect").fetchone()  # type: ignore[misc]
    span = (last - first).total_seconds()
    counts = {key: sum(int(r.get(key, 0)) for r in reports) for key in ("ack", "nack", "reject", "error")}
    check["queue_left"] = left
    check["acks"] = counts["ack"]
    problems = _problems(mode, check, counts, n)
    result = {
        "mode": mode,
        "repeat": repeat,
        "messages": n,
        "msgs_per_s": (n - 1) / span if span > 0 else float("inf"),
        "sink_span_s": span,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_us_per_msg": {name: 1e6 * value / n for name, value in cpu.items()},
        "cores": {name: value / wall for name, value in cpu.items()},
        "load_average": [list(load_before), list(load_after)],
        "check": check,
        "consumer_counts": counts,
        "transport": sorted({str(r.get("transport", "")) for r in reports}),
        "problems": problems,
    }
    threads: Counter[str] = Counter()
    for report in reports:
        threads.update(report.get("thread_cpu_s", {}))
    result["consumer_threads_us_per_msg"] = {k: round(1e6 * v / n) for k, v in threads.most_common()}
    if profiles:
        result["py_spy"] = profiles
    print(
        f"  round {repeat} {mode:5s} {result['msgs_per_s']:8.0f} msgs/s  "
        + "  ".join(f"{k} {v:.0f}" for k, v in result["cpu_us_per_msg"].items())
        + " µs/msg"
        + (f"  PROBLEMS: {problems}" if problems else ""),
        flush=True,
    )
    return result


def _start_profilers(
    services: Services, consumer: subprocess.Popen[str], label: str, out: str
) -> list[tuple[str, Path, subprocess.Popen[bytes]]]:
    """`py-spy record` (raw collapsed stacks) of the sidecar and of one consumer, when --py-spy DIR is given."""
    if not out:
        return []
    assert services.sidecar.process is not None
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    profilers = []
    for name, pid in (("sidecar", services.sidecar.process.pid), ("consumer", consumer.pid)):
        path = directory / f"{label}-{name}.txt"
        command = [PY_SPY, "record", "--pid", str(pid), "--format", "raw", "--output", str(path), "--rate", "200",
                   "--nonblocking", "--threads"]  # fmt: skip
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        profilers.append((name, path, process))
    time.sleep(1.0)  # py-spy attaches
    return profilers


def _stop_profilers(profilers: list[tuple[str, Path, subprocess.Popen[bytes]]]) -> dict[str, Any]:
    summaries: dict[str, Any] = {}
    for name, path, process in profilers:
        process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        summaries[name] = {"file": str(path), **profile_summary(path)} if path.exists() else {"file": ""}
    return summaries


def profile_summary(path: Path, top: int = 12) -> dict[str, Any]:
    """From py-spy's collapsed stacks: the share of samples per leaf function (self) and per frame (inclusive)."""
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [FRAME.sub(r"(\1)", frame) for frame in stack.split(";")]  # "f (dir/x.py:12)" -> "f (x.py)"
        total += count
        leaf[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    share = (lambda c: round(100 * c / total, 1)) if total else (lambda c: 0.0)
    return {
        "samples": total,
        "self_pct": {k: share(v) for k, v in leaf.most_common(top)},
        "inclusive_pct": {k: share(v) for k, v in inclusive.most_common(top * 3)},
    }


def _count(db: psycopg.Connection[Any]) -> int:
    row = db.execute("SELECT count(*) FROM order_effect").fetchone()
    return int(row[0]) if row else 0


def _stop(consumers: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    """SIGTERM (the consumer stops consuming and prints its counts), bounded; SIGKILL after."""
    reports: list[dict[str, Any]] = []
    for consumer in consumers:
        if consumer.poll() is None:
            consumer.terminate()
    for consumer in consumers:
        try:
            out, _ = consumer.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            consumer.kill()
            out, _ = consumer.communicate()
        lines = [line for line in (out or "").splitlines() if line.startswith("{")]
        reports.append(json.loads(lines[-1]) if lines else {})
    return reports


def _check(db: psycopg.Connection[Any], ids: list[str], namespace: str) -> dict[str, Any]:
    """Every id applied exactly once in the sink: duplicates, missing and unexpected ids."""
    applied = Counter(row[0] for row in db.execute("SELECT id FROM order_effect"))
    expected = set(ids)
    check: dict[str, Any] = {
        "rows": sum(applied.values()),
        "distinct": len(applied),
        "duplicates": sum(c - 1 for c in applied.values() if c > 1),
        "missing": len(expected - applied.keys()),
        "unexpected": len(applied.keys() - expected),
    }
    if namespace:
        row = db.execute("SELECT count(*) FROM dedup_applied WHERE namespace = %s", (namespace,)).fetchone()
        check["dedup_applied"] = int(row[0]) if row else 0
    check["exact"] = check["duplicates"] == 0 and check["missing"] == 0 and check["unexpected"] == 0
    return check


def _problems(mode: str, check: dict[str, Any], counts: dict[str, int], n: int) -> list[str]:
    problems = []
    if not check["exact"]:
        problems.append(
            f"sink not exact: {check['duplicates']} duplicates, {check['missing']} missing, "
            f"{check['unexpected']} unexpected"
        )
    if mode == "dedup" and check.get("dedup_applied") != n:
        problems.append(f"dedup_applied has {check.get('dedup_applied')} rows, not {n}")
    if check["queue_left"]:
        problems.append(f"{check['queue_left']} messages left in the queue")
    if counts["ack"] != n:
        problems.append(f"{counts['ack']} acks for {n} messages")
    return problems


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per mode: the median round (by msgs/s) and every round's msgs/s; the dedup/plain ratio."""
    modes: dict[str, Any] = {}
    for mode in ("plain", "dedup"):
        runs = sorted((r for r in rounds if r["mode"] == mode), key=lambda r: float(r["msgs_per_s"]))
        if not runs:
            continue
        median = runs[len(runs) // 2]
        modes[mode] = {
            "msgs_per_s": statistics.median(float(r["msgs_per_s"]) for r in runs),
            "runs_msgs_per_s": [r["msgs_per_s"] for r in rounds if r["mode"] == mode],
            "cpu_us_per_msg": {
                name: statistics.median(float(r["cpu_us_per_msg"][name]) for r in runs) for name in PROCESSES
            },
            "median_round": median["repeat"],
        }
    summary: dict[str, Any] = {"modes": modes, "target": TARGET_RATIO}
    if "plain" in modes and "dedup" in modes:
        ratio = modes["dedup"]["msgs_per_s"] / modes["plain"]["msgs_per_s"]
        pairs = [
            d["msgs_per_s"] / p["msgs_per_s"]
            for p in rounds
            if p["mode"] == "plain"
            for d in rounds
            if d["mode"] == "dedup" and d["repeat"] == p["repeat"]
        ]
        summary.update(ratio=ratio, ratio_per_repeat=pairs, met=ratio >= TARGET_RATIO)
    return summary


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    summary = results["summary"]
    lines = [
        "# Pipeline throughput: RabbitMQ -> PostgreSQL, with and without the sidecar",
        "",
        f"{s['messages']} distinct orders per round, {s['consumers']} consumers, prefetch {s['prefetch']}, "
        f"{s['repeats']} x (plain, dedup) interleaved; started {results['started']}; "
        f"load average {results['load_average_start'][0]:.1f} at the start, "
        f"{results['load_average_end'][0]:.1f} at the end ({os.cpu_count()} cores).",
        "",
        "| mode | msgs/s (median) | every round | " + " | ".join(f"{p} µs/msg" for p in PROCESSES) + " |",
        "|---|---:|---|" + "---:|" * len(PROCESSES),
    ]
    for mode, m in summary["modes"].items():
        runs = ", ".join(f"{v:.0f}" for v in m["runs_msgs_per_s"])
        cpu = " | ".join(f"{m['cpu_us_per_msg'][p]:.0f}" for p in PROCESSES)
        lines.append(f"| {mode} | {m['msgs_per_s']:.0f} | {runs} | {cpu} |")
    if "ratio" in summary:
        per = ", ".join(f"{r:.2f}" for r in summary["ratio_per_repeat"])
        verdict = "met" if summary["met"] else "NOT met"
        lines += [
            "",
            f"**dedup / plain = {summary['ratio']:.2f}** (target >= {summary['target']}: {verdict}); "
            f"per repeat: {per}.",
        ]
    lines += [
        "",
        "| round | mode | msgs/s | wall s | load avg | sink check | transport |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for r in results["rounds"]:
        c = r["check"]
        sink = "exact" if c["exact"] else f"{c['duplicates']} dup / {c['missing']} missing"
        load = f"{r['load_average'][0][0]:.1f} -> {r['load_average'][1][0]:.1f}"
        lines.append(
            f"| {r['repeat']} | {r['mode']} | {r['msgs_per_s']:.0f} | {r['wall_s']:.1f} | {load} | {sink} "
            f"| {', '.join(t for t in r['transport'] if t) or '-'} |"
        )
    lines += ["", "CPU µs per message: the process tree's user+system CPU from the consumers' go to the last row, / N."]
    for mode, m in summary["modes"].items():
        median = next(r for r in results["rounds"] if r["mode"] == mode and r["repeat"] == m["median_round"])
        split = ", ".join(f"{k} {v}" for k, v in median.get("consumer_threads_us_per_msg", {}).items() if v)
        lines += [
            "",
            f"Consumers' CPU µs per message by thread, {mode} (round {median['repeat']}, go to exit): {split}.",
        ]
    for r in results["rounds"]:
        for name, profile in r.get("py_spy", {}).items():
            if profile.get("samples"):
                top = ", ".join(f"{frame} {pct}%" for frame, pct in list(profile["self_pct"].items())[:8])
                lines += ["", f"py-spy, round {r['repeat']} {r['mode']}, {name} ({profile['samples']} samples), "
                          f"self time: {top}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000, help="distinct orders per round")
    parser.add_argument("--consumers", type=int, default=4, help="consumer processes")
    parser.add_argument("--prefetch", type=int, default=20, help="unacked messages per consumer")
    parser.add_argument("--repeats", type=int, default=3, help="(plain, dedup) pairs, interleaved")
    parser.add_argument("--transport", choices=("stream", "unary"), default="stream", help="the dedup client's")
    parser.add_argument("--threads", type=int, default=1, help="handler threads per consumer (one DedupClient)")
    parser.add_argument("--round-timeout", type=float, default=600, help="seconds for one round to drain")
    parser.add_argument("--py-spy", default="", metavar="DIR", help="py-spy the sidecar and one consumer into DIR")
    parser.add_argument("--smoke", action="store_true", help="500 orders, 1 repeat (CI)")
    parser.add_argument("--out", default="bench/results-pipeline", help="output directory")
    args = parser.parse_args(argv)
    if args.smoke:
        args.messages, args.repeats = 500, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "command": " ".join(["python -m bench.pipeline", *(argv if argv is not None else sys.argv[1:])]),
        "python": sys.version.split()[0],
        "load_average_start": list(os.getloadavg()),
    }
    services = start_services()
    rounds: list[dict[str, Any]] = []
    try:
        for repeat in range(1, args.repeats + 1):
            for mode in ("plain", "dedup"):
                rounds.append(run_round(services, mode, repeat, args))
    finally:
        stop_services(services)
        results["rounds"] = rounds
        results["load_average_end"] = list(os.getloadavg())
        results["summary"] = summarize(rounds)
        (out_dir / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True, default=str))
    (out_dir / "results.md").write_text(text := markdown(results))
    print(text)
    problems = [f"round {r['repeat']} {r['mode']}: {p}" for r in rounds for p in r["problems"]]
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
