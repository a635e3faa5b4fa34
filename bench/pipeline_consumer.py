"""The consumer of the pipeline bench (bench/pipeline.py): RabbitMQ -> one PostgreSQL transaction per order.

    python -m bench.pipeline_consumer --mode plain|dedup --amqp-url URL --queue Q --pg-dsn DSN \
        [--target HOST:PORT --namespace NS] --name c1

Modelled on clients/python/examples/rabbitmq/consumer.py (sync pika, psycopg, the shipped
`EffectivelyOnce` helper), with one sink, so the two modes differ only by the dedup layer:
  plain: INSERT the order row in one transaction, then ack; no sidecar calls;
  dedup: `EffectivelyOnce.run` (default settings: stream transport, wait_ms 5000) with a 5 s lease;
         the handler is the same transaction plus `mark_applied` (the transactional recipe).
Manual acks, prefetch 20. The consumer connects everything, prints `ready`, and starts consuming
only when a line arrives on stdin, so the bench measures CPU from that moment on, without start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
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
        key = "dedup-renew" if name.startswith("dedup-renew") else name.split(" (")[0]
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
    args = parser.parse_args()

    db = psycopg.connect(args.pg_dsn)
    counts = {"ack": 0, "nack": 0, "reject": 0, "error": 0}

    def effect(order_id: str, lease: Lease | None) -> None:
        """The order row in one transaction; with a lease, only when mark_applied says it is the first."""
        with db.transaction(), db.cursor() as cur:
            if lease is None:
                cur.execute(INSERT, (order_id, 0, args.name))
            elif mark_applied(cur, args.namespace, order_id, lease.token):
                cur.execute(INSERT, (order_id, lease.token, args.name))

    client: DedupClient | None = None
    handle: Callable[[BlockingChannel, int, str], None]
    if args.mode == "dedup":
        client = DedupClient(args.target, transport=args.transport)
        once = EffectivelyOnce(client, args.namespace, lease_ms=LEASE_MS)

        def handle_dedup(channel: BlockingChannel, tag: int, order_id: str) -> None:
            try:
                outcome = once.run(order_id, lambda lease: effect(order_id, lease))
            except (DedupError, psycopg.OperationalError):
                counts["error"] += 1
                time.sleep(RETRY_PAUSE_S)
                channel.basic_nack(tag, requeue=True)
                return
            if outcome.action is Action.ACK:  # PROCESSED, DUPLICATE, LEASE_LOST
                counts["ack"] += 1
                channel.basic_ack(tag)
            elif outcome.action is Action.DEAD_LETTER:
                counts["reject"] += 1
                channel.basic_reject(tag, requeue=False)
            else:  # NACK: another consumer still holds it after the claim's wait
                counts["nack"] += 1
                time.sleep(min(outcome.retry_after_ms / 1000, RETRY_PAUSE_S))
                channel.basic_nack(tag, requeue=True)

        handle = handle_dedup
    else:

        def handle_plain(channel: BlockingChannel, tag: int, order_id: str) -> None:
            try:
                effect(order_id, None)
            except psycopg.OperationalError:
                counts["error"] += 1
                time.sleep(RETRY_PAUSE_S)
                channel.basic_nack(tag, requeue=True)
                return
            counts["ack"] += 1
            channel.basic_ack(tag)

        handle = handle_plain

    def on_message(channel: BlockingChannel, deliver: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
        handle(channel, deliver.delivery_tag, props.message_id or json.loads(body)["id"])

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
        db.close()
        return 0
    channel.basic_consume(args.queue, on_message, auto_ack=False)
    threads_before, times = thread_cpu(), os.times()
    try:
        channel.start_consuming()
    finally:
        threads = cpu_by_thread(threads_before, times.user + times.system)
        transport = client.transport if client is not None else ""
        if client is not None:
            client.close()
        db.close()
        if connection.is_open:
            connection.close()
    print(json.dumps({"name": args.name, "transport": transport, "thread_cpu_s": threads, **counts}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
