"""A NATS JetStream consumer that applies each order effectively once, with the asyncio helper.

    python clients/python/examples/nats/consumer.py --nats-url nats://127.0.0.1:4222 \
        --target 127.0.0.1:50051 --pg-dsn postgresql://postgres@127.0.0.1:5432/orders

A durable pull consumer with explicit acks, AckWait 6 s (> the 5 s lease: a crashed holder's
message comes back when its lease has already ended, so the copy is claimed at once). Each
fetched batch is handled concurrently; per message the handler tells JetStream it is working
(`in_progress()` restarts AckWait), then applies the transactional sink recipe (`mark_applied` +
the effect row in one PostgreSQL transaction). The helper's outcome decides the JetStream action:
ack, nak with a delay (IN_PROGRESS: redelivered after the holder's remaining lease), or term
(CONFLICT). --events writes one JSON line per step (for tests/pipeline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from typing import Any

import nats
import psycopg
from dedup_client import Action, AsyncDedupClient, AsyncEffectivelyOnce, AsyncLease, DedupError
from dedup_client.sinks import mark_applied
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

LEASE_MS = 5_000
ACK_WAIT_S = 6.0
BATCH = 10
RETRY_PAUSE_S = 0.5  # nak delay after an error, so a message does not spin


class Events:
    """One JSON line per step, appended with a single write (survives SIGKILL line by line)."""

    def __init__(self, path: str, consumer: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else -1
        self.consumer = consumer

    def __call__(self, event: str, **fields: Any) -> None:
        if self.fd >= 0:
            line = {"t": time.time(), "c": self.consumer, "pid": os.getpid(), "e": event, **fields}
            os.write(self.fd, (json.dumps(line) + "\n").encode())


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--stream", default="ORDERS")
    parser.add_argument("--subject", default="orders.new")
    parser.add_argument("--durable", default="orders-apply", help="the durable consumer all instances share")
    parser.add_argument("--target", default="127.0.0.1:50051", help="the dedup sidecar")
    parser.add_argument("--pg-dsn", default="postgresql://postgres@127.0.0.1:5432/orders")
    parser.add_argument("--namespace", default="orders.nats")
    parser.add_argument("--name", default=f"py-{os.getpid()}", help="this consumer's name in the effect rows")
    parser.add_argument("--events", default="", help="append one JSON line per step to this file")
    args = parser.parse_args()
    events = Events(args.events, args.name)

    db = psycopg.connect(args.pg_dsn)  # used from one worker thread at a time (db_lock)
    db_lock = asyncio.Lock()
    client = AsyncDedupClient(args.target)
    once = AsyncEffectivelyOnce(client, args.namespace, lease_ms=LEASE_MS)

    def apply_sync(order_id: str, token: int) -> bool:
        with db.transaction(), db.cursor() as cur:  # the transactional sink: exactly once
            first = mark_applied(cur, args.namespace, order_id, token)
            if first:
                cur.execute(
                    "INSERT INTO nats_effect (id, token, consumer) VALUES (%s, %s, %s)", (order_id, token, args.name)
                )
        return first

    async def handle(msg: Msg) -> None:
        order_id = msg.headers.get("Nats-Msg-Id") if msg.headers else None
        order_id = order_id or json.loads(msg.data)["id"]
        delivered = msg.metadata.num_delivered

        async def apply(lease: AsyncLease) -> None:
            """The handler. An exception here releases the lease (nothing committed)."""
            events("claimed", id=order_id, token=lease.token, delivered=delivered)
            await msg.in_progress()  # restarts AckWait: JetStream keeps this copy ours while we work
            async with db_lock:
                first = await asyncio.to_thread(apply_sync, order_id, lease.token)
            events("tx", id=order_id, token=lease.token, first=first)

        try:
            outcome = await once.run(order_id, apply)
        except (DedupError, psycopg.OperationalError) as err:
            # Released (handler error) or the sidecar unreachable: the redelivery decides.
            events("error", id=order_id, kind=type(err).__name__, msg=str(err)[:200])
            await msg.nak(delay=RETRY_PAUSE_S)
            return
        events("outcome", id=order_id, status=outcome.status.value, token=outcome.fencing_token, delivered=delivered)
        if outcome.action is Action.ACK:  # PROCESSED, DUPLICATE, LEASE_LOST
            await msg.ack_sync(timeout=5)
            events("acked", id=order_id)
        elif outcome.action is Action.DEAD_LETTER:  # CONFLICT: the same id with other content
            await msg.term()
        else:  # NACK (IN_PROGRESS after the claim's wait): redeliver when the holder's lease ends
            await msg.nak(delay=max(outcome.retry_after_ms / 1000, RETRY_PAUSE_S))

    nc = await nats.connect(args.nats_url, max_reconnect_attempts=-1)
    js = nc.jetstream()
    config = ConsumerConfig(
        durable_name=args.durable,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_S,
        max_deliver=-1,  # never give up on a message: IN_PROGRESS naks must not count it out
        deliver_policy=DeliverPolicy.ALL,
        max_ack_pending=1000,
    )
    sub = await js.pull_subscribe(args.subject, durable=args.durable, stream=args.stream, config=config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    events("start")
    print(f"{args.name}: consuming {args.stream}/{args.durable}", flush=True)
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(BATCH, timeout=1)
            except (NatsTimeout, TimeoutError):  # nothing to fetch (nats-py raises either)
                continue
            for result in await asyncio.gather(*(handle(msg) for msg in msgs), return_exceptions=True):
                if isinstance(result, Exception):  # e.g. an ack not confirmed: the message comes back
                    events("error", kind=type(result).__name__, msg=str(result)[:200])
    finally:
        await nc.close()  # every handled message is acked or nak'ed by now; the rest come back after AckWait
        await client.close()
        db.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
