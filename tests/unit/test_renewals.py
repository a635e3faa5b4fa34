"""The sync helper's shared lease renewals (clients/python/src/dedup_client/renewals.py), no sidecar needed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from dedup_client.errors import UnavailableError
from dedup_client.renewals import Renewals

TIMEOUT_S = 10.0


def wait_until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.001)


class Lease:
    """A renew function that counts its calls; `lost` after `lost_after` calls, raising on `failing` ones."""

    def __init__(self, lost_after: int = 10**9, failing: frozenset[int] = frozenset()) -> None:
        self.calls = 0
        self.lost_after = lost_after
        self.failing = failing
        self.timeouts: list[float] = []

    def __call__(self, timeout_s: float) -> bool:
        self.calls += 1
        self.timeouts.append(timeout_s)
        if self.calls in self.failing:
            raise UnavailableError(14, "sidecar unreachable")
        return self.calls < self.lost_after


def test_each_lease_is_renewed_until_stopped() -> None:
    renewals = Renewals(idle_exit_s=0.05)
    a, b = Lease(), Lease()
    ra, rb = renewals.start(a, 0.002), renewals.start(b, 0.003)
    wait_until(lambda: a.calls >= 3 and b.calls >= 3)
    renewals.stop(ra)
    stopped_at = a.calls
    wait_until(lambda: b.calls >= stopped_at + 5)  # the thread went on with b, never with a again
    assert a.calls == stopped_at
    renewals.stop(rb)
    wait_until(lambda: not renewals.running)  # idle: the thread ended
    assert a.timeouts[0] == 0.5  # a renewal's own deadline: at least 0.5 s, at most the interval or 5 s


def test_a_lost_lease_leaves_the_schedule_and_an_error_does_not() -> None:
    renewals = Renewals(idle_exit_s=0.05)
    lost = Lease(lost_after=2)
    flaky = Lease(failing=frozenset({1, 2}))
    renewals.start(lost, 0.001)
    r = renewals.start(flaky, 0.001)
    wait_until(lambda: flaky.calls >= 5)  # renewed again after its two failures
    assert lost.calls == 2  # renewal said "lost" on its second call: never called again
    renewals.stop(r)
    wait_until(lambda: not renewals.running)


def test_stop_waits_for_a_renewal_of_that_lease_in_flight() -> None:
    renewals = Renewals(idle_exit_s=0.05)
    entered, release = threading.Event(), threading.Event()
    finished: list[float] = []

    def slow(timeout_s: float) -> bool:
        entered.set()
        release.wait(TIMEOUT_S)
        finished.append(time.monotonic())
        return True

    r = renewals.start(slow, 0.001)
    assert entered.wait(TIMEOUT_S)
    stopper = threading.Thread(target=renewals.stop, args=(r,))
    stopper.start()
    stopper.join(0.05)
    assert stopper.is_alive()  # still renewing: stop() has not returned
    release.set()
    stopper.join(TIMEOUT_S)
    assert not stopper.is_alive()
    assert len(finished) == 1  # stopped: never renewed again


def test_the_thread_starts_again_after_an_idle_exit() -> None:
    renewals = Renewals(idle_exit_s=0.01)
    first = Lease()
    renewals.stop(renewals.start(first, 0.001))
    wait_until(lambda: not renewals.running)
    again = Lease()
    r = renewals.start(again, 0.001)
    wait_until(lambda: again.calls >= 2)
    renewals.stop(r)


class CountingSleeps(Renewals):
    """Counts the renewing thread's waits: each one after the first is a wake-up."""

    def __init__(self, idle_exit_s: float) -> None:
        super().__init__(idle_exit_s)
        self.sleeps = 0

    def _sleep(self, until: float) -> None:
        self.sleeps += 1
        super()._sleep(until)


def test_one_message_after_another_does_not_wake_the_thread() -> None:
    """A consumer's leases, one at a time, each due an interval after the last: no wake-up per message."""
    renewals = CountingSleeps(idle_exit_s=30)
    for _ in range(200):
        renewals.stop(renewals.start(Lease(), 20.0))
    assert renewals.sleeps <= 2  # the thread's first wait, and at most one re-plan; not 200
    sooner = Lease()
    r = renewals.start(sooner, 0.001)  # due before the thread's wait ends: it is woken for it
    wait_until(lambda: sooner.calls >= 1)
    renewals.stop(r)


def test_a_renewal_that_hangs_holds_up_no_other_lease() -> None:
    """A sidecar failing over: one lease's renewal blocks; the others' renewals go on meanwhile."""
    renewals = Renewals(idle_exit_s=0.05)
    entered, release = threading.Event(), threading.Event()

    def hanging(timeout_s: float) -> bool:
        entered.set()
        release.wait(TIMEOUT_S)
        return True

    stuck = renewals.start(hanging, 0.001)
    assert entered.wait(TIMEOUT_S)
    other = Lease()
    r = renewals.start(other, 0.002)
    wait_until(lambda: other.calls >= 5)  # renewed again and again while the first one hangs
    release.set()
    renewals.stop(stuck)
    renewals.stop(r)
    wait_until(lambda: not renewals.running)
