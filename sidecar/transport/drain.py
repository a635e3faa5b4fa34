"""Graceful shutdown's bookkeeping: the work in flight, and the switch that stops taking more.

In flight means a unary call being answered or a Stream message being answered; an open
Stream with nothing to answer, or an idle (or frozen) connection, is not. On `begin()` the
Streams stop reading (each answers what it already read, then ends with UNAVAILABLE so its
client reconnects elsewhere), and `wait_idle` returns as soon as nothing is in flight: the
server then stops at once instead of waiting the whole grace for connections that will never
close by themselves (ADR 0066).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class Drain:
    def __init__(self) -> None:
        self.closing = False
        self._active = 0
        self._idle: asyncio.Event | None = None
        self._readers: set[asyncio.Task[None]] = set()

    @property
    def active(self) -> int:
        return self._active

    @contextmanager
    def track(self) -> Iterator[None]:
        """Counts the block as work in flight."""
        self._active += 1
        try:
            yield
        finally:
            self._active -= 1
            if self._active == 0 and self._idle is not None:
                self._idle.set()

    def add_reader(self, reader: asyncio.Task[None]) -> None:
        """A Stream's request reader, cancelled when the drain begins (at once if it has)."""
        if self.closing:
            reader.cancel()
            return
        self._readers.add(reader)
        reader.add_done_callback(self._readers.discard)

    def begin(self) -> None:
        self.closing = True
        for reader in list(self._readers):
            reader.cancel()

    async def wait_idle(self, timeout_s: float) -> bool:
        """True once nothing is in flight; False if work is still running after `timeout_s`."""
        if self._active == 0:
            return True
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True
