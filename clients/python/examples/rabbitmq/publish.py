"""Publishes order messages to a RabbitMQ queue, with publisher confirms and producer retries.

    python clients/python/examples/rabbitmq/publish.py --amqp-url amqp://guest:guest@127.0.0.1:5672/%2F \
        --count 1000 --retry-rate 0.05

Each message carries its id in the AMQP `message_id` property. A share of the messages
(--retry-rate) is published a second time, as a producer does when it misses a confirm:
the consumers see those ids twice. --rate paces the publishing (messages per second, 0 =
as fast as confirms allow). Prints `published=N retries=R` at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import pika


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--queue", default="orders")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--prefix", default="order")
    parser.add_argument("--retry-rate", type=float, default=0.05)
    parser.add_argument("--rate", type=float, default=0.0, help="messages per second (0: no pacing)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    connection = pika.BlockingConnection(pika.URLParameters(args.amqp_url))
    channel = connection.channel()
    channel.queue_declare(args.queue, durable=True)
    channel.confirm_delivery()
    start = time.monotonic()
    retries = 0
    for n in range(args.count):
        if args.rate > 0:
            time.sleep(max(0.0, start + n / args.rate - time.monotonic()))
        message_id = f"{args.prefix}-{n}"
        body = json.dumps({"id": message_id, "amount_cents": 100 + n % 900}).encode()
        properties = pika.BasicProperties(message_id=message_id, delivery_mode=pika.DeliveryMode.Persistent)
        copies = 2 if rng.random() < args.retry_rate else 1
        for _ in range(copies):
            channel.basic_publish("", args.queue, body, properties, mandatory=True)
        retries += copies - 1
    connection.close()
    print(f"published={args.count} retries={retries}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
