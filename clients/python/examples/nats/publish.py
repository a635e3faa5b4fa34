"""Publishes orders to a JetStream stream with Nats-Msg-Id, and duplicates of both kinds.

    python clients/python/examples/nats/publish.py --nats-url nats://127.0.0.1:4222 --count 1000

- --retry-rate: the share of orders published twice at once with the same Nats-Msg-Id (a
  publish retried after a lost PubAck). JetStream drops the copy inside the stream's
  duplicate window (PubAck.duplicate): the broker removes these.
- --late-rate: the share of orders published once more at the end, after --late-after seconds
  (a producer that restarts and re-sends its outbox after the duplicate window). JetStream
  stores these copies: the consumer side (the sidecar) removes them.
Creates the stream (subjects orders.>) when missing, and sets its duplicate window to --dup-window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import nats
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--stream", default="ORDERS")
    parser.add_argument("--subject", default="orders.new")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--retry-rate", type=float, default=0.05)
    parser.add_argument("--late-rate", type=float, default=0.03)
    parser.add_argument("--late-after", type=float, default=0.0, help="seconds to wait before the late copies")
    parser.add_argument("--dup-window", type=float, default=120.0, help="the stream's duplicate window (s)")
    parser.add_argument("--rate", type=float, default=0.0, help="orders per second (0: as fast as possible)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    nc = await nats.connect(args.nats_url)
    js = nc.jetstream()
    config = StreamConfig(name=args.stream, subjects=["orders.>"], duplicate_window=args.dup_window)
    try:
        await js.stream_info(args.stream)
        await js.update_stream(config)  # e.g. another --dup-window
    except NotFoundError:
        await js.add_stream(config)
    stored = dropped = 0
    late: list[tuple[str, bytes]] = []
    started = time.monotonic()
    for n in range(args.count):
        if args.rate > 0:
            await asyncio.sleep(max(0.0, started + n / args.rate - time.monotonic()))
        order_id = f"order-{n}"
        body = json.dumps({"id": order_id, "amount": rng.randrange(10_000)}).encode()
        copies = 2 if rng.random() < args.retry_rate else 1
        for _ in range(copies):
            ack = await js.publish(args.subject, body, headers={"Nats-Msg-Id": order_id})
            dropped += ack.duplicate is True
            stored += ack.duplicate is not True
        if rng.random() < args.late_rate:
            late.append((order_id, body))
    await asyncio.sleep(args.late_after)
    for order_id, body in late:
        ack = await js.publish(args.subject, body, headers={"Nats-Msg-Id": order_id})
        dropped += ack.duplicate is True
        stored += ack.duplicate is not True
    await nc.close()
    print(
        f"published {args.count} orders: {stored} stored, {dropped} copies dropped by JetStream (Nats-Msg-Id), "
        f"{len(late)} re-sent after the duplicate window, in {time.monotonic() - started:.1f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
