"""The shutdown bookkeeping (no I/O): work in flight, idle detection, readers stopped."""

from __future__ import annotations

import asyncio

from sidecar.transport.drain import Drain


async def test_wait_idle_returns_when_the_last_tracked_work_ends() -> None:
    drain = Drain()
    assert await drain.wait_idle(0.01)  # nothing in flight
    release = asyncio.Event()

    async def work() -> None:
        with drain.track():
            await release.wait()

    task = asyncio.create_task(work())
    await asyncio.sleep(0)
    assert drain.active == 1
    assert not await drain.wait_idle(0.01)  # still running: the grace caps the wait
    waiting = asyncio.create_task(drain.wait_idle(5))
    release.set()
    assert await waiting
    await task
    assert drain.active == 0


async def test_begin_cancels_readers_and_later_ones_at_once() -> None:
    drain = Drain()
    forever = asyncio.Event()
    before = asyncio.create_task(forever.wait())
    drain.add_reader(before)  # type: ignore[arg-type]
    drain.begin()
    await asyncio.sleep(0)
    assert before.cancelled()
    after = asyncio.create_task(forever.wait())
    drain.add_reader(after)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert after.cancelled()
