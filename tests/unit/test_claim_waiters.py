"""The waiter map (no I/O): bounded, woken by key, emptied by unregister, closed on shutdown."""

from __future__ import annotations

from sidecar.domain.claim_waiters import ClaimWaiters, WaitEnd


async def test_waiters_are_woken_by_their_key_only() -> None:
    waiters = ClaimWaiters(limit=10)
    a1, a2, b = waiters.register("a"), waiters.register("a"), waiters.register("b")
    assert a1 is not None
    assert a2 is not None
    assert b is not None
    waiters.wake("a")
    assert a1.event.is_set()
    assert a2.event.is_set()
    assert not b.event.is_set()
    waiters.wake("nobody")  # a key nobody waits for is no error


async def test_the_limit_bounds_registrations_and_unregister_frees_room() -> None:
    waiters = ClaimWaiters(limit=2)
    first, second = waiters.register("k"), waiters.register("k")
    assert first is not None
    assert second is not None
    assert waiters.register("k") is None
    waiters.unregister(first)
    waiters.unregister(first)  # twice: counted once
    assert len(waiters) == 1
    assert waiters.register("other") is not None
    waiters.unregister(second)
    assert waiters._by_key.keys() == {"other"}


async def test_close_wakes_everyone_and_refuses_new_waits() -> None:
    waiters = ClaimWaiters()
    waiter = waiters.register("k")
    assert waiter is not None
    waiters.close()
    assert waiter.event.is_set()
    assert waiters.register("k") is None


def test_ends_are_counted_per_namespace_label() -> None:
    waiters = ClaimWaiters()
    waiters.count_end("orders", WaitEnd.COMMITTED)
    waiters.count_end("orders", WaitEnd.COMMITTED)
    waiters.count_end("default", WaitEnd.TIMEOUT)
    assert waiters.ended == {("orders", WaitEnd.COMMITTED): 2, ("default", WaitEnd.TIMEOUT): 1}
