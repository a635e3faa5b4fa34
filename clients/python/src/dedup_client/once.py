"""The effectively-once helper (sync): claim(wait) -> handler(lease) -> commit, per docs/adr/0013-helper-rules.md.

    once = EffectivelyOnce(client, "payments.charge")
    outcome = once.run(message.id, lambda lease: charge(message, lease.token))
    if outcome.should_ack: message.ack()
    else: message.nack()          # outcome.action tells NACK from DEAD_LETTER

1. Claim waits up to `wait_ms` (default 5 s) for another holder of the id.
2. The handler gets a `Lease` (token, `lost`, `ensure()`), renewed every third of it
   from a background thread (one per helper, for all its leases: renewals.py).
3. A handler exception means "before the effect": the lease is released and the
   exception propagates (nack).
4. After the handler returned the helper never releases: it commits, retrying an
   unreachable sidecar for as long as the lease lasts; on LEASE_LOST it re-claims
   once (ACQUIRED -> commit -> PROCESSED; otherwise LEASE_LOST).
5. The lease's renewals are stopped before the call returns, whatever happened.
Also a decorator (`@once.handler`) and a context manager (`with once.attempt(id) as attempt:`).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

from dedup_client.client import DedupClient
from dedup_client.errors import DeadlineExceededError, DedupError, UnavailableError
from dedup_client.lease import Lease
from dedup_client.outcome import Action, Outcome, Status, not_acquired, renew_interval_s
from dedup_client.renewals import Renewals
from dedup_client.results import ClaimResult, CommitOutcome

T = TypeVar("T")
P = ParamSpec("P")
log = logging.getLogger("dedup_client")
DEFAULT_LEASE_MS = 30_000
DEFAULT_WAIT_MS = 5_000
UNREACHABLE = (UnavailableError, DeadlineExceededError)


class CommitBackoff:
    """50 ms doubling to 1 s, full jitter: the waits between Commit attempts."""

    def __init__(self, initial_s: float = 0.05, max_s: float = 1.0) -> None:
        self._next_s = initial_s
        self._max_s = max_s

    def next(self) -> float:
        wait = random.uniform(self._next_s / 2, self._next_s)
        self._next_s = min(self._max_s, self._next_s * 2)
        return wait


def not_recorded(err: DedupError) -> UnavailableError:
    return UnavailableError(err.code, f"effect applied, commit not recorded (lease ended): {err.message}")


class Attempt:
    """One claim, as seen inside `with once.attempt(id) as attempt:`.

    If `acquired`, do the work under `lease` and optionally set `result` (bytes
    stored with the commit). `outcome` is final after the block.
    """

    def __init__(self, claim: ClaimResult, lease: Lease | None = None) -> None:
        self.claim = claim
        self.lease = lease
        self.result: bytes | None = None
        self._outcome: Outcome[None] | None = None if claim.acquired else not_acquired(claim)

    @property
    def acquired(self) -> bool:
        return self.claim.acquired

    @property
    def fencing_token(self) -> int:
        return self.claim.fencing_token

    @property
    def lease_lost(self) -> bool:
        """True once the lease is known to be gone: stop early if you can."""
        return self.lease is not None and self.lease.lost

    @property
    def outcome(self) -> Outcome[None]:
        if self._outcome is None:
            raise RuntimeError("the outcome of an acquired attempt is known only after its block ends")
        return self._outcome


class EffectivelyOnce:
    """Runs a handler once per id in `namespace` (per window), by the rules in the module docstring.

    lease_ms: the lease taken per message (renewed every renew_every_ms, default a third of it).
    wait_ms: how long a Claim waits for another holder of the id (0: answer IN_PROGRESS at once).
    encode: turns the handler's return value into the bytes stored with the commit
    (returned to later duplicates as Outcome.stored_result); None stores nothing.
    """

    def __init__(
        self,
        client: DedupClient,
        namespace: str,
        *,
        lease_ms: int = DEFAULT_LEASE_MS,
        renew_every_ms: int | None = None,
        wait_ms: int = DEFAULT_WAIT_MS,
        window_ms: int = 0,
        encode: Callable[[Any], bytes | None] | None = None,
    ) -> None:
        if lease_ms <= 0 or wait_ms < 0:
            raise ValueError("lease_ms must be > 0 and wait_ms >= 0")
        self.client = client
        self.encode = encode
        self.namespace = namespace
        self.lease_ms = lease_ms
        self.wait_ms = wait_ms
        self.window_ms = window_ms
        self._interval_s = renew_interval_s(lease_ms, renew_every_ms)
        self._renewals = Renewals()

    @contextmanager
    def attempt(self, id: bytes | str, *, fingerprint: bytes | str | None = None) -> Iterator[Attempt]:
        """Claims `id`; commits when the block ends normally, releases (and re-raises) on an exception."""
        sent_at = time.monotonic()
        claim = self.client.claim(
            self.namespace,
            id,
            fingerprint=fingerprint,
            lease_ms=self.lease_ms,
            wait_ms=self.wait_ms,
            timeout=self.wait_ms / 1000 + self.client.default_timeout,
        )
        if not claim.acquired:
            yield Attempt(claim)
            return
        lease = Lease(self.client, self.namespace, id, claim.fencing_token, self.lease_ms, sent_at)
        attempt = Attempt(claim, lease)
        renewal = self._renewals.start(lambda timeout_s: lease.renew(timeout=timeout_s), self._interval_s)
        try:
            try:
                yield attempt
            except BaseException:
                self._renewals.stop(renewal)
                self._release(lease)
                raise
            attempt._outcome = self._commit(lease, fingerprint, attempt.result)  # renewing meanwhile
        finally:
            self._renewals.stop(renewal)

    def _release(self, lease: Lease) -> None:
        try:
            self.client.release(self.namespace, lease.id, lease.token)
        except DedupError as err:  # the lease ends by itself; the handler's error matters more
            log.warning("dedup: release after handler error failed: %s", err)

    def _commit(
        self, lease: Lease, fingerprint: bytes | str | None, result: bytes | None, *, reclaimed: bool = False
    ) -> Outcome[None]:
        """Commits after the effect: retried while the lease lasts; LEASE_LOST -> one re-claim."""
        backoff = CommitBackoff()
        while True:
            try:
                commit = self.client.commit(
                    self.namespace, lease.id, lease.token, result=result, window_ms=self.window_ms
                )
            except UNREACHABLE as err:
                if lease.remaining_s <= 0:
                    if reclaimed:
                        raise not_recorded(err) from err
                    return self._reclaim(lease, fingerprint, result, err)
                log.warning("dedup: commit failed, retrying within the lease: %s", err)
                time.sleep(min(backoff.next(), lease.remaining_s))  # backoff between commit attempts
                continue
            if commit.outcome is CommitOutcome.COMMITTED:
                return Outcome(Status.PROCESSED, stored_result=result, fencing_token=lease.token)
            if reclaimed:
                return Outcome(Status.LEASE_LOST, stored_result=result, fencing_token=lease.token)
            return self._reclaim(lease, fingerprint, result, None)

    def _reclaim(
        self, lease: Lease, fingerprint: bytes | str | None, result: bytes | None, unreachable: DedupError | None
    ) -> Outcome[None]:
        """The lease is gone and the effect is done: take the id again (no wait) and commit at once."""
        sent_at = time.monotonic()
        try:
            claim = self.client.claim(self.namespace, lease.id, fingerprint=fingerprint, lease_ms=self.lease_ms)
        except UNREACHABLE as err:
            raise not_recorded(unreachable or err) from err
        if not claim.acquired:  # someone else holds or committed it
            log.warning("dedup: lease lost before commit; the id is now %s", claim.outcome)
            return Outcome(Status.LEASE_LOST, stored_result=result, fencing_token=lease.token)
        fresh = Lease(self.client, self.namespace, lease.id, claim.fencing_token, self.lease_ms, sent_at)
        return self._commit(fresh, fingerprint, result, reclaimed=True)

    def run(
        self, id: bytes | str, handler: Callable[[Lease], T], *, fingerprint: bytes | str | None = None
    ) -> Outcome[T]:
        """claim -> handler(lease) -> commit (storing encode(value) if `encode` was given)."""
        with self.attempt(id, fingerprint=fingerprint) as attempt:
            if attempt.lease is None:
                return _retyped(attempt.outcome)
            value = handler(attempt.lease)
            if self.encode is not None:
                attempt.result = self.encode(value)
        return attempt.outcome.with_value(value)

    def handler(self, fn: Callable[Concatenate[Lease, P], T]) -> Callable[Concatenate[bytes | str, P], Outcome[T]]:
        """Decorator: `@once.handler def f(lease, ...)` becomes `f(id, ...) -> Outcome`."""

        @functools.wraps(fn)
        def wrapper(id: bytes | str, /, *args: P.args, **kwargs: P.kwargs) -> Outcome[T]:
            return self.run(id, lambda lease: fn(lease, *args, **kwargs))

        return wrapper


def _retyped(outcome: Outcome[None]) -> Outcome[T]:
    return Outcome(outcome.status, None, outcome.stored_result, outcome.retry_after_ms, outcome.fencing_token)


__all__ = ["Action", "Attempt", "EffectivelyOnce", "Lease", "Outcome", "Status"]
