"""The process's waiting Claims, by record key: bounded, and woken by name (ADR 0065).

A Claim that waits for an in-progress holder registers here before it runs the claim
script, so a wake-up that arrives while the script's reply is still on its way is not
lost. The wake subscriber (redis_store/wake.py) calls `wake(key)` for every record key
that a Commit or Release published, and `wake_all()` after it (re)subscribed, when
notifications may have been missed. Waking only sets an event: the waiter re-runs the
claim script, which decides.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from enum import Enum

DEFAULT_MAX_WAITERS = 10_000


class WaitEnd(Enum):
    """How a wait ended (the `ended` label of dedup_claim_wait_total)."""

    COMMITTED = "committed"  # the holder committed: DUPLICATE
    RELEASED = "released"  # woken by a Release (or a Commit answered otherwise): the re-claim decided
    EXPIRED = "expired"  # the holder's lease ended with no wake-up: the re-claim decided
    TIMEOUT = "timeout"  # wait_ms (or the call's deadline) passed: IN_PROGRESS
    CANCELLED = "cancelled"  # the caller went away
    OVERFLOW = "overflow"  # no room for another waiter: answered at once
    ERROR = "error"  # a re-claim failed in the store
    SHUTDOWN = "shutdown"  # the sidecar is shutting down: answered with a last re-claim


class Waiter:
    __slots__ = ("event", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self.event = asyncio.Event()


class ClaimWaiters:
    """At most `limit` waiters at once; counts how waits ended, per namespace label."""

    def __init__(self, limit: int = DEFAULT_MAX_WAITERS) -> None:
        self.limit = limit
        self._by_key: dict[str, set[Waiter]] = {}
        self._count = 0
        self.ended: Counter[tuple[str, WaitEnd]] = Counter()
        self.closing = False

    def __len__(self) -> int:
        return self._count

    def register(self, key: str) -> Waiter | None:
        """A new waiter for `key`, or None when `limit` waiters already wait (or shutting down)."""
        if self._count >= self.limit or self.closing:
            return None
        waiter = Waiter(key)
        self._by_key.setdefault(key, set()).add(waiter)
        self._count += 1
        return waiter

    def unregister(self, waiter: Waiter) -> None:
        waiters = self._by_key.get(waiter.key)
        if waiters is None or waiter not in waiters:
            return
        waiters.discard(waiter)
        self._count -= 1
        if not waiters:
            del self._by_key[waiter.key]

    def wake(self, key: str) -> None:
        for waiter in self._by_key.get(key, ()):
            waiter.event.set()

    def wake_all(self) -> None:
        for waiters in self._by_key.values():
            for waiter in waiters:
                waiter.event.set()

    def close(self) -> None:
        """Shutdown: every waiter re-claims once and answers; no new waits."""
        self.closing = True
        self.wake_all()

    def count_end(self, namespace: str, end: WaitEnd) -> None:
        self.ended[(namespace, end)] += 1
