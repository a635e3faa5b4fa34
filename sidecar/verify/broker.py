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
                loop.call_later(self._rng.uniform(0, self._max_delay_s), self._deliver, message)

    def _deliver(self, message: str) -> None:
        if message in self.acked:
            return
        self.deliveries += 1
        self._queue.put_nowait(message)
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
        await self._all_acked.wait()

    def close(self) -> None:
        for handles in self._timers.values():
            for handle in handles:
                handle.cancel()
        self._timers.clear()
