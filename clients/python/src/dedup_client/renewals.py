"""The sync helper's lease renewals: one scheduling thread per helper for every lease it holds.

A thread per lease cost each message a thread start and join (tens of µs of CPU and a few
hundred µs of wall time on a busy machine, in a consumer that handles one message at a
time). Here a helper's leases wait in one heap ordered by when they are next due. One
scheduling thread takes each lease when its turn comes and hands the renewal (a blocking
call bounded by the lease's renew timeout) to a small pool of renewing threads, so a
renewal that hangs (a sidecar failing over) holds up no other lease's; the lease goes back
on the schedule until it is lost or stopped. The threads start with the first lease and
end after `idle_exit_s` without any (or, after the last lease stopped, once the turn the
scheduler was waiting for has come: stopping a lease wakes nobody).

Waking the scheduler costs a few tens of µs of CPU: `start` wakes it only when the new lease
is due before it would wake anyway, so a consumer handling one message after another (one
lease at a time, each due an interval after the last) starts and stops leases without waking it.

`stop(renewal)` returns once no renewal of that lease is running or will run: it waits only
if that very lease is being renewed at that moment (at most its renew timeout).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from dedup_client.errors import DedupError

log = logging.getLogger("dedup_client")

IDLE_EXIT_S = 1.0
RENEWING_THREADS = 8  # renewals that may hang at once before the next one waits for a thread

Renew = Callable[[float], bool]  # renew(timeout_s) -> False once the lease is lost


class Renewal:
    """One lease on the schedule."""

    __slots__ = ("interval_s", "renew", "renewing_thread", "running", "stopped", "timeout_s")

    def __init__(self, renew: Renew, interval_s: float) -> None:
        self.renew = renew
        self.interval_s = interval_s
        # a renewal that hangs (a frozen sidecar) must not outlast the next one's turn by much
        self.timeout_s = max(0.5, min(interval_s, 5.0))
        self.running = False
        self.stopped = False
        self.renewing_thread: threading.Thread | None = None


class Renewals:
    """Renews leases, each every its interval: one scheduling thread, a few renewing ones. Thread-safe."""

    def __init__(self, idle_exit_s: float = IDLE_EXIT_S, renewing_threads: int = RENEWING_THREADS) -> None:
        self._idle_exit_s = idle_exit_s
        self._renewing_threads = renewing_threads
        self._changed = threading.Condition()
        self._due: list[tuple[float, int, Renewal]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._running = 0  # renewals handed to the pool and not finished
        self._wakes_at = 0.0  # when the waiting scheduler wakes by itself (0: it is not waiting)

    def start(self, renew: Renew, interval_s: float) -> Renewal:
        """Schedules `renew` every `interval_s`, the first one `interval_s` from now."""
        renewal = Renewal(renew, interval_s)
        with self._changed:
            due = time.monotonic() + interval_s
            heapq.heappush(self._due, (due, next(self._order), renewal))
            if self._thread is None:
                self._pool = ThreadPoolExecutor(self._renewing_threads, thread_name_prefix="dedup-renewing")
                self._thread = threading.Thread(target=self._run, args=(self._pool,), name="dedup-renew", daemon=True)
                self._thread.start()
            elif due < self._wakes_at:  # the scheduler sleeps past this one's turn: it re-plans
                self._changed.notify()
        return renewal

    def stop(self, renewal: Renewal) -> None:
        """No renewal of this lease runs after this returns (called from its own renewal: at once)."""
        with self._changed:
            renewal.stopped = True  # dropped from the schedule when its turn comes
            while renewal.running and threading.current_thread() is not renewal.renewing_thread:
                self._changed.wait()

    @property
    def running(self) -> bool:
        """Whether the scheduling thread is alive (for tests: it ends when idle)."""
        with self._changed:
            return self._thread is not None

    def _next(self) -> Renewal | None:
        """The next due renewal, marked running; None when idle for idle_exit_s. Holds the lock."""
        idle_since = time.monotonic()
        while True:
            while self._due and self._due[0][2].stopped:
                heapq.heappop(self._due)
            now = time.monotonic()
            if not self._due:
                if self._running:  # a renewal in flight may put its lease back
                    idle_since = now
                if now - idle_since >= self._idle_exit_s:
                    self._thread = None
                    return None
                self._sleep(idle_since + self._idle_exit_s)
                continue
            due, _, renewal = self._due[0]
            if due > now:
                self._sleep(due)
                continue
            heapq.heappop(self._due)
            renewal.running = True
            self._running += 1
            return renewal

    def _sleep(self, until: float) -> None:
        """Waits (the lock released) until `until` or a notify. Holds the lock."""
        self._wakes_at = until
        self._changed.wait(max(until - time.monotonic(), 0.0))
        self._wakes_at = 0.0

    def _run(self, pool: ThreadPoolExecutor) -> None:
        with self._changed:
            while (renewal := self._next()) is not None:
                pool.submit(self._renew, renewal)
        pool.shutdown(wait=False)  # its threads end once idle; a new pool comes with the next lease

    def _renew(self, renewal: Renewal) -> None:
        """One renewal, on a renewing thread; the lease goes back on the schedule unless lost or stopped."""
        renewal.renewing_thread = threading.current_thread()
        keep = True
        try:
            keep = renewal.renew(renewal.timeout_s)
        except DedupError as err:  # keep trying until the lease ends; the commit will tell
            log.warning("dedup: lease renewal failed: %s", err)
        except Exception:  # never let one lease's failure end the renewals every other lease relies on
            log.exception("dedup: lease renewal raised")
        with self._changed:
            renewal.running = False
            renewal.renewing_thread = None
            self._running -= 1
            if keep and not renewal.stopped:
                due = time.monotonic() + renewal.interval_s
                heapq.heappush(self._due, (due, next(self._order), renewal))
            self._changed.notify_all()  # stop() waiting for this lease; the scheduler re-plans
