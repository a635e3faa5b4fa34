"""Wait-for-result: a Claim that finds its id in progress waits for the holder (ADR 0065).

The claim script stays the state machine: this module only waits and runs it again.
A waiting item is registered (ClaimWaiters) before its first claim script call, which
flags an IN_PROGRESS record with the wake channel; the holder's Commit or Release then
publishes the key and the subscriber wakes the waiter. A wait also re-runs the script
when the holder's lease should have ended (retry_after: a lost lease publishes nothing),
and ends after wait_ms with the last IN_PROGRESS answer. A missed notification therefore
costs time, never a wrong answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from sidecar.domain.claim_waiters import ClaimWaiters, WaitEnd, Waiter
from sidecar.domain.errors import StoreError, StoreTimeout
from sidecar.domain.outcomes import ClaimDecision, ClaimOutcome
from sidecar.domain.store import ClaimItem, ItemResults, Store

# A re-claim after the holder's lease runs a little after its end, so that it finds the key gone.
_LEASE_END_MARGIN_S = 0.002
# Time a re-claim may take past the end of the wait (within the 100 ms kept before a call's deadline).
_LAST_CLAIM_S = 0.08


class ClaimWaiting:
    def __init__(self, store: Store, waiters: ClaimWaiters, channel: str) -> None:
        self._store = store
        self._waiters = waiters
        self._channel = channel

    async def claim(
        self, items: Sequence[ClaimItem], wait_ms: Sequence[int], labels: Sequence[str], timeout_s: float
    ) -> ItemResults[ClaimDecision]:
        """Claims the items; each IN_PROGRESS item with wait_ms > 0 waits. `timeout_s` bounds each store call."""
        registered: list[Waiter | None] = []
        sent: list[ClaimItem] = []
        for item, wait, label in zip(items, wait_ms, labels, strict=True):
            waiter = self._waiters.register(item.key) if wait > 0 else None
            if wait > 0 and waiter is None:
                self._waiters.count_end(label, WaitEnd.SHUTDOWN if self._waiters.closing else WaitEnd.OVERFLOW)
            registered.append(waiter)
            sent.append(replace(item, wake_channel=self._channel) if waiter is not None else item)
        try:
            async with asyncio.timeout(timeout_s):
                results = await self._store.claim(sent)
            waits = {
                index: self._wait_one(sent[index], waiter, result, wait_ms[index] / 1000, labels[index], timeout_s)
                for index, (waiter, result) in enumerate(zip(registered, results, strict=True))
                if waiter is not None and isinstance(result, ClaimDecision) and _in_progress(result)
            }
            for index, waiter in enumerate(registered):
                if waiter is not None and index not in waits:
                    self._waiters.unregister(waiter)
            if waits:
                async with asyncio.TaskGroup() as group:  # a failure or a cancellation ends every wait
                    tasks = {index: group.create_task(wait) for index, wait in waits.items()}
                for index, task in tasks.items():
                    results[index] = task.result()
            return results
        finally:
            for waiter in registered:
                if waiter is not None:
                    self._waiters.unregister(waiter)

    async def _wait_one(
        self, item: ClaimItem, waiter: Waiter, first: ClaimDecision, wait_s: float, label: str, timeout_s: float
    ) -> ClaimDecision | StoreError:
        loop = asyncio.get_running_loop()
        until = loop.time() + wait_s
        latest, latest_at = first, loop.time()
        try:
            while True:
                remaining = until - loop.time()
                lease_end = latest.retry_after_ms / 1000 + _LEASE_END_MARGIN_S
                if remaining <= 0:
                    return self._timed_out(latest, latest_at, label)
                woken = await _woken(waiter.event, min(remaining, lease_end))
                if not woken and remaining <= lease_end:
                    return self._timed_out(latest, latest_at, label)
                waiter.event.clear()
                # The wait's end bounds a re-claim too (a unary call's deadline is 100 ms past it).
                bound = min(timeout_s, max(until - loop.time(), 0.0) + _LAST_CLAIM_S)
                try:
                    async with asyncio.timeout(bound):
                        (result,) = await self._store.claim([item])
                except TimeoutError:
                    if bound < timeout_s:  # out of waiting time: the last answer the store gave stands
                        return self._timed_out(latest, latest_at, label)
                    result = StoreTimeout()
                except StoreError as err:
                    result = err
                if isinstance(result, StoreError):
                    self._waiters.count_end(label, WaitEnd.ERROR)
                    return result
                if not _in_progress(result):
                    self._waiters.count_end(label, _end_of(result, woken))
                    return result
                latest, latest_at = result, loop.time()
                if self._waiters.closing:
                    return self._timed_out(latest, latest_at, label, WaitEnd.SHUTDOWN)
        except asyncio.CancelledError:
            self._waiters.count_end(label, WaitEnd.CANCELLED)
            raise
        finally:
            self._waiters.unregister(waiter)

    def _timed_out(
        self, latest: ClaimDecision, latest_at: float, label: str, end: WaitEnd = WaitEnd.TIMEOUT
    ) -> ClaimDecision:
        """The last IN_PROGRESS answer, its retry_after counted down to now."""
        self._waiters.count_end(label, end)
        elapsed_ms = int((asyncio.get_running_loop().time() - latest_at) * 1000)
        return replace(latest, retry_after_ms=max(latest.retry_after_ms - elapsed_ms, 0))


def _in_progress(decision: ClaimDecision) -> bool:
    return decision.outcome is ClaimOutcome.IN_PROGRESS


def _end_of(decision: ClaimDecision, woken: bool) -> WaitEnd:
    if decision.outcome is ClaimOutcome.DUPLICATE:
        return WaitEnd.COMMITTED
    return WaitEnd.RELEASED if woken else WaitEnd.EXPIRED


async def _woken(event: asyncio.Event, within_s: float) -> bool:
    """True when the event was set within `within_s`."""
    try:
        async with asyncio.timeout(within_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
