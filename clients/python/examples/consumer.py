"""Example consumer: an in-process queue that redelivers messages (at-least-once), deduplicated
by the sidecar with the effectively-once helper.

    python clients/python/examples/consumer.py --target 127.0.0.1:50051

It publishes --unique messages, then redelivers a share of them (--redeliveries), and one
handler fails once so its message is nacked, released and processed on redelivery.
Prints how many were processed and how many duplicates were skipped; processed == unique.
"""

from __future__ import annotations

import argparse
import collections
import random
import uuid
from dataclasses import dataclass

from dedup_client import Action, DedupClient, DedupError, EffectivelyOnce, Lease, Status


@dataclass(frozen=True)
class Message:
    id: str
    body: str


class FlakyQueue:
    """At-least-once delivery: some messages come again, and a nacked one always does."""

    def __init__(self, messages: list[Message], redeliveries: int, rng: random.Random) -> None:
        self.pending = collections.deque(messages + rng.choices(messages, k=redeliveries))
        rng.shuffle(self.pending)

    def receive(self) -> Message | None:
        return self.pending.popleft() if self.pending else None

    def nack(self, message: Message) -> None:
        self.pending.append(message)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="127.0.0.1:50051")
    parser.add_argument("--namespace", default="example.orders")
    parser.add_argument("--unique", type=int, default=100)
    parser.add_argument("--redeliveries", type=int, default=40)
    args = parser.parse_args()

    run = uuid.uuid4().hex[:8]  # fresh ids per run, so the example can be run again
    rng = random.Random(7)
    messages = [Message(f"order-{run}-{n}", f"order #{n}") for n in range(args.unique)]
    queue = FlakyQueue(messages, args.redeliveries, rng)
    fail_once = {messages[0].id}
    effects: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()

    with DedupClient(args.target) as client:
        once = EffectivelyOnce(client, args.namespace, lease_ms=10_000, encode=str.encode)

        def handle(message: Message, lease: Lease) -> str:
            if message.id in fail_once:
                fail_once.discard(message.id)
                raise RuntimeError("payment provider timed out")
            lease.ensure()  # right before an effect that cannot be fenced: raises LeaseLostError if gone
            effects[message.id] += 1  # the side effect, e.g. charging a card
            return f"receipt for {message.body} (token {lease.token})"

        while (message := queue.receive()) is not None:
            try:
                outcome = once.run(message.id, lambda lease, m=message: handle(m, lease))
            except (RuntimeError, DedupError):  # the handler failed (released), or the sidecar is unreachable
                counts["failed_then_redelivered"] += 1
                queue.nack(message)
                continue
            if outcome.status is Status.PROCESSED:
                counts["processed"] += 1
            elif outcome.status is Status.DUPLICATE:
                counts["duplicates_skipped"] += 1
            match outcome.action:
                case Action.ACK:
                    pass  # PROCESSED, DUPLICATE, LEASE_LOST: the queue forgets it
                case Action.NACK:  # IN_PROGRESS elsewhere after wait_ms: try again later
                    queue.nack(message)
                case Action.DEAD_LETTER:  # CONFLICT: the same id with other content
                    counts["dead_lettered"] += 1

    print(
        f"processed={counts['processed']} duplicates_skipped={counts['duplicates_skipped']} "
        f"failed_then_redelivered={counts['failed_then_redelivered']} unique={args.unique} "
        f"max_effects_per_message={max(effects.values())}"
    )
    return 0 if counts["processed"] == args.unique and max(effects.values()) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
