"""A simulated at-least-once broker: delivers every message, adds random duplicates, delays
and reorderings, and redelivers whatever is not acked within the visibility timeout."""

from __future__ import annotations

import asyncio
import random


class Broker:
    def __init__(
        self,
        messages: list[str],
        rng: random.Random,
        *,
        duplicate_rate: float = 0.3,
        max_delay_s: float = 0.5,
        visibility_s: float = 5.0,
    ) -> None:
        self.messages = messages
        self._rng = rng
        self._duplicate_rate = duplicate_rate
        self._max_delay_s = max_delay_s
        self._visibility_s = visibility_s
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self.acked: set[str] = set()
        self.deliveries = 0
        self._timers: dict[str, list[asyncio.TimerHandle]] = {}
        self._all_acked = asyncio.Event()
        self._last_send = 0.0

    def start(self) -> None:
        """Schedules the first delivery of every message (shuffled, delayed) and random duplicates."""
        loop = asyncio.get_running_loop()
        order = list(self.messages)
        self._rng.shuffle(order)
        for message in order:
            copies = 1
            while self._rng.random() < self._duplicate_rate and copies < 4:
                copies += 1
            for _ in range(copies):
                delay = self._rng.uniform(0, self._max_delay_s)
                self._last_send = max(self._last_send, loop.time() + delay)
                loop.call_later(delay, self._deliver, message, True)

    def _deliver(self, message: str, sent_again: bool = False) -> None:
        """`sent_again`: a producer-side duplicate, delivered even after an ack (brokers do)."""
        if message in self.acked and not sent_again:
            return
        self.deliveries += 1
        self._queue.put_nowait(message)
        if message in self.acked:
            return
        # Unacked after the visibility timeout (a consumer died holding it): deliver again.
        handle = asyncio.get_running_loop().call_later(self._visibility_s, self._deliver, message)
        self._timers.setdefault(message, []).append(handle)

    async def get(self) -> str:
        return await self._queue.get()

    def ack(self, message: str) -> None:
        self.acked.add(message)
        for handle in self._timers.pop(message, []):
            handle.cancel()
        if len(self.acked) == len(self.messages):
            self._all_acked.set()

    def nack(self, message: str, delay_s: float) -> None:
        """Processing failed or must wait: deliver again after `delay_s` (jittered)."""
        if message not in self.acked:
            asyncio.get_running_loop().call_later(delay_s * self._rng.uniform(1.0, 1.5), self._deliver, message)

    async def wait_all_acked(self) -> None:
        """Every message acked and every producer-side duplicate delivered and taken."""
        await self._all_acked.wait()
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(self._last_send - loop.time(), 0))
        while not self._queue.empty():  # noqa: ASYNC110 - bounded by the caller's timeout
            await asyncio.sleep(0.05)

    def close(self) -> None:
        for handles in self._timers.values():
            for handle in handles:
                handle.cancel()
        self._timers.clear()
