"""A RabbitMQ consumer that applies each order effectively once, with the effectively-once helper.

    python clients/python/examples/rabbitmq/consumer.py \
        --amqp-url amqp://guest:guest@127.0.0.1:5672/%2F --target 127.0.0.1:50051 \
        --pg-dsn postgresql://postgres@127.0.0.1:5432/orders

Manual acks, prefetch 20, a 5 s lease. Per message the handler applies three sinks
(docs/effectively-once.md):
  1. transactional: `mark_applied` + the effect row in one PostgreSQL transaction (exactly once);
  2. fenced: `advance_fence` on the order's resource + the write, in one transaction (no stale write);
  3. plain: an autocommit insert, right after `lease.ensure()` (the crash window only).
The helper's outcome decides the AMQP action: ack, nack with requeue, or reject to the dead letters.
--events writes one JSON line per step (for tests/pipeline, which derives the causes of duplicates).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import pika
import psycopg
from dedup_client import Action, DedupClient, DedupError, EffectivelyOnce, Lease, LeaseLostError
from dedup_client.sinks import advance_fence, mark_applied
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

LEASE_MS = 5_000
PREFETCH = 20
RETRY_PAUSE_S = 0.2  # before a nack, so a message in progress elsewhere does not spin


class Events:
    """One JSON line per step, appended with a single write (survives SIGKILL line by line)."""

    def __init__(self, path: str, consumer: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else -1
        self.consumer = consumer

    def __call__(self, event: str, **fields: Any) -> None:
        if self.fd >= 0:
            line = {"t": time.time(), "c": self.consumer, "pid": os.getpid(), "e": event, **fields}
            os.write(self.fd, (json.dumps(line) + "\n").encode())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--queue", default="orders")
    parser.add_argument("--target", default="127.0.0.1:50051", help="the dedup sidecar")
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/orders")
    parser.add_argument("--namespace", default="orders.apply")
    parser.add_argument("--name", default=f"py-{os.getpid()}", help="this consumer's name in the effect rows")
    parser.add_argument("--heartbeat", type=int, default=5, help="AMQP heartbeat (s): a stuck consumer's "
                        "messages go back to the queue after about two of them")  # fmt: skip
    parser.add_argument("--events", default="", help="append one JSON line per step to this file")
    args = parser.parse_args()
    events = Events(args.events, args.name)

    db = psycopg.connect(args.pg_dsn)
    client = DedupClient(args.target)
    once = EffectivelyOnce(client, args.namespace, lease_ms=LEASE_MS)

    def apply(order_id: str, lease: Lease) -> None:
        """The handler: three sinks. An exception here releases the lease (nothing committed)."""
        token = lease.token
        events("claimed", id=order_id, token=token)
        with db.transaction(), db.cursor() as cur:  # 1. transactional sink: exactly once
            first = mark_applied(cur, args.namespace, order_id, token)
            if first:
                cur.execute(
                    "INSERT INTO order_effect (id, token, consumer) VALUES (%s, %s, %s)", (order_id, token, args.name)
                )
        events("tx", id=order_id, token=token, first=first)
        with db.transaction(), db.cursor() as cur:  # 2. fenced resource: no stale overwrite
            fresh = advance_fence(cur, f"order/{order_id}", token)
            if fresh:
                cur.execute(
                    "INSERT INTO order_fenced_write (id, token, consumer) VALUES (%s, %s, %s)",
                    (order_id, token, args.name),
                )
        events("fenced", id=order_id, token=token, ok=fresh)
        # 3. plain effect: cannot be fenced, so make sure the lease is still ours right before it.
        try:
            lease.ensure()  # a synchronous Renew: raises LeaseLostError if another holder may have taken over
        except LeaseLostError:
            events("lease_gone", id=order_id, token=token)
            raise
        events("ensured", id=order_id, token=token)
        with db.transaction(), db.cursor() as cur:
            cur.execute(
                "INSERT INTO order_plain_effect (id, token, consumer) VALUES (%s, %s, %s)", (order_id, token, args.name)
            )
        events("plain", id=order_id, token=token)

    def on_message(channel: BlockingChannel, deliver: Basic.Deliver, props: BasicProperties, body: bytes) -> None:
        order_id = props.message_id or json.loads(body)["id"]
        try:
            outcome = once.run(order_id, lambda lease: apply(order_id, lease))
        except (DedupError, psycopg.OperationalError) as err:
            # Released (handler error) or the sidecar unreachable: the redelivery decides.
            events("error", id=order_id, kind=type(err).__name__, msg=str(err)[:200])
            time.sleep(RETRY_PAUSE_S)
            channel.basic_nack(deliver.delivery_tag, requeue=True)
            return
        events("outcome", id=order_id, status=outcome.status.value, token=outcome.fencing_token)
        if outcome.action is Action.ACK:  # PROCESSED, DUPLICATE, LEASE_LOST
            channel.basic_ack(deliver.delivery_tag)
            events("acked", id=order_id)
        elif outcome.action is Action.DEAD_LETTER:  # CONFLICT: the same id with other content
            channel.basic_reject(deliver.delivery_tag, requeue=False)
        else:  # NACK (IN_PROGRESS after the claim's wait): another consumer still holds it
            time.sleep(min(outcome.retry_after_ms / 1000, RETRY_PAUSE_S))
            channel.basic_nack(deliver.delivery_tag, requeue=True)

    parameters = pika.URLParameters(args.amqp_url)
    parameters.heartbeat = args.heartbeat
    connection = pika.BlockingConnection(parameters)
    channel = connection.channel()
    channel.queue_declare(args.queue, durable=True)
    channel.basic_qos(prefetch_count=PREFETCH)
    channel.basic_consume(args.queue, on_message, auto_ack=False)
    events("start")
    print(f"{args.name}: consuming {args.queue}", flush=True)
    try:
        channel.start_consuming()
    except KeyboardInterrupt:
        channel.stop_consuming()
    finally:
        client.close()
        db.close()
        if connection.is_open:
            connection.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
