"""The consumer of the pipeline bench (bench/pipeline.py): RabbitMQ -> one PostgreSQL transaction per order.

    python -m bench.pipeline_consumer --mode plain|dedup --amqp-url URL --queue Q --pg-dsn DSN \
        [--target HOST:PORT --namespace NS] --name c1

Modelled on clients/python/examples/rabbitmq/consumer.py (sync pika, psycopg, the shipped
`EffectivelyOnce` helper), with one sink, so the two modes differ only by the dedup layer:
  plain: INSERT the order row in one transaction, then ack; no sidecar calls;
  dedup: `EffectivelyOnce.run` (default settings: stream transport, wait_ms 5000) with a 5 s lease;
         the handler is the same transaction plus `mark_applied` (the transactional recipe).
Manual acks, prefetch 20, one message at a time (as the example); `--threads N` runs N handler
threads over one DedupClient instead (acks go back to pika's thread). The consumer connects
everything, prints `ready`, and starts consuming only when a line arrives on stdin, so the bench
measures CPU from that moment on, without start-up.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pika
import psycopg
from dedup_client import Action, DedupClient, DedupError, EffectivelyOnce, Lease
from dedup_client.sinks import mark_applied
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

LEASE_MS = 5_000
PREFETCH = 20
RETRY_PAUSE_S = 0.2  # before a nack, so a message in progress elsewhere does not spin
INSERT = "INSERT INTO order_effect (id, token, consumer) VALUES (%s, %s, %s)"


def thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of each live thread of this process, by native id, with its name."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    threads: dict[int, tuple[str, float]] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        comm, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        tid = int(task.name)
        threads[tid] = (names.get(tid, f"native:{comm}"), (int(fields[11]) + int(fields[12])) / tick)
    return threads


def cpu_by_thread(before: dict[int, tuple[str, float]], process_before: float) -> dict[str, float]:
    """CPU seconds per thread name since `before`; threads that started and ended meanwhile as "exited"."""
    after = thread_cpu()
    spent: dict[str, float] = {}
    for tid, (name, cpu) in after.items():
        key = next((p for p in ("dedup-renew", "worker") if name.startswith(p)), name.split(" (")[0])
        spent[key] = spent.get(key, 0.0) + cpu - before.get(tid, (name, 0.0))[1]
    times = os.times()
    spent["exited threads"] = times.user + times.system - process_before - sum(spent.values())
    return {k: round(v, 3) for k, v in spent.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("plain", "dedup"), required=True)
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--pg-dsn", required=True)
    parser.add_argument("--target", default="", help="the dedup sidecar (dedup mode)")
    parser.add_argument("--namespace", default="orders.apply")
    parser.add_argument("--name", default=f"c-{os.getpid()}")
    parser.add_argument("--prefetch", type=int, default=PREFETCH)
    parser.add_argument("--transport", choices=("stream", "unary"), default="stream", help="the client's transport")
    parser.add_argument("--threads", type=int, default=1, help="handler threads sharing one DedupClient")
    args = parser.parse_args()

    dbs: queue.SimpleQueue[psycopg.Connection[Any]] = queue.SimpleQueue()  # one per handler thread
    for _ in range(args.threads):
        dbs.put(psycopg.connect(args.pg_dsn))
    counts = {"ack": 0, "nack": 0, "reject": 0, "error": 0}
    counts_lock = threading.Lock()

    def count(key: str) -> str:
        with counts_lock:
            counts[key] += 1
        return key

    def effect(order_id: str, lease: Lease | None) -> None:
        """The order row in one transaction; with a lease, only when mark_applied says it is the first."""
        db = dbs.get()
        try:
            with db.transaction(), db.cursor() as cur:
                if lease is None:
                    cur.execute(INSERT, (order_id, 0, args.name))
                elif mark_applied(cur, args.namespace, order_id, lease.token):
                    cur.execute(INSERT, (order_id, lease.token, args.name))
        finally:
            dbs.put(db)

    client: DedupClient | None = None
    decide: Callable[[str], str]  # the order's id -> "ack" | "nack" | "reject"
    if args.mode == "dedup":
        client = DedupClient(args.target, transport=args.transport)
        once = EffectivelyOnce(client, args.namespace, lease_ms=LEASE_MS)

        def decide_dedup(order_id: str) -> str:
            try:
                outcome = once.run(order_id, lambda lease: effect(order_id, lease))
            except (DedupError, psycopg.OperationalError):
                time.sleep(RETRY_PAUSE_S)
                count("error")
                return "nack"
            if outcome.action is Action.ACK:  # PROCESSED, DUPLICATE, LEASE_LOST
                return count("ack")
            if outcome.action is Action.DEAD_LETTER:
                return count("reject")
            # NACK: another consumer still holds it after the claim's wait
            time.sleep(min(outcome.retry_after_ms / 1000, RETRY_PAUSE_S))
            return count("nack")

        decide = decide_dedup
    else:

        def decide_plain(order_id: str) -> str:
            try:
                effect(order_id, None)
            except psycopg.OperationalError:
                time.sleep(RETRY_PAUSE_S)
                count("error")
                return "nack"
            return count("ack")

        decide = decide_plain

    def reply(channel: BlockingChannel, tag: int, decision: str) -> None:
        if decision == "ack":
            channel.basic_ack(tag)
        elif decision == "reject":
            channel.basic_reject(tag, requeue=False)
        else:
            channel.basic_nack(tag, requeue=True)

    pool = ThreadPoolExecutor(args.threads, thread_name_prefix="worker") if args.threads > 1 else None

    def work(channel: BlockingChannel, tag: int, order_id: str) -> None:
        """On a handler thread: decide, then ack/nack on the connection's thread (pika is not thread-safe)."""
        try:
            decision = decide(order_id)
        except Exception as err:  # reported, and the message goes back to the queue
            print(f"handler error: {err!r}", file=sys.stderr, flush=True)
            decision = "nack"
        connection.add_callback_threadsafe(functools.partial(reply, channel, tag, decision))

    def on_message(channel: BlockingChannel, deliver: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
        order_id = props.message_id or json.loads(body)["id"]
        if pool is None:
            reply(channel, deliver.delivery_tag, decide(order_id))
        else:
            pool.submit(work, channel, deliver.delivery_tag, order_id)

    connection = pika.BlockingConnection(pika.URLParameters(args.amqp_url))
    channel = connection.channel()
    channel.queue_declare(args.queue, durable=True)
    channel.basic_qos(prefetch_count=args.prefetch)

    def stop(*_: Any) -> None:
        connection.add_callback_threadsafe(channel.stop_consuming)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":  # the bench says go, or gave up (EOF)
        connection.close()
        return 0
    channel.basic_consume(args.queue, on_message, auto_ack=False)
    threads_before, times = thread_cpu(), os.times()
    try:
        channel.start_consuming()
    finally:
        threads = cpu_by_thread(threads_before, times.user + times.system)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        transport = client.transport if client is not None else ""
        if client is not None:
            client.close()
        while not dbs.empty():
            dbs.get().close()
        if connection.is_open:
            connection.close()
    print(json.dumps({"name": args.name, "transport": transport, "thread_cpu_s": threads, **counts}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
