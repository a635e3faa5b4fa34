"""The effectively-once helper (sync): claim -> handler(token) -> commit, or release on error.

    once = EffectivelyOnce(client, "payments.charge")
    outcome = once.run(message.id, lambda token: charge(message, token))
    if outcome.should_ack: message.ack()
    else: message.nack()

While the handler runs, a background thread renews the lease every third of
it. A handler exception releases the lease (so a redelivery can proceed at
once) and propagates: nack. Also a decorator (`@once.handler`) and a context
manager (`with once.attempt(id) as attempt:`).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

from dedup_client.client import DedupClient
from dedup_client.errors import DedupError
from dedup_client.outcome import Outcome, Status, after_commit, not_acquired, renew_interval_s
from dedup_client.results import ClaimResult, RenewOutcome

T = TypeVar("T")
P = ParamSpec("P")
log = logging.getLogger("dedup_client")
DEFAULT_LEASE_MS = 30_000


class _Heartbeat:
    """Renews one lease from a daemon thread until stopped or the lease is lost."""

    def __init__(self, renew: Callable[[], RenewOutcome], interval_s: float) -> None:
        self._renew = renew
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dedup-renew", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                if self._renew() is RenewOutcome.LEASE_LOST:
                    self.lost.set()
                    return
            except DedupError as err:  # keep trying until the lease ends; commit will tell
                log.warning("dedup: lease renewal failed: %s", err)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Attempt:
    """One claim, as seen inside `with once.attempt(id) as attempt:`.

    If `acquired`, do the work with `fencing_token` and optionally set `result`
    (bytes stored with the commit). `outcome` is final after the block.
    """

    def __init__(self, claim: ClaimResult) -> None:
        self.claim = claim
        self.result: bytes | None = None
        self._outcome: Outcome[None] | None = None if claim.acquired else not_acquired(claim)
        self._heartbeat: _Heartbeat | None = None

    @property
    def acquired(self) -> bool:
        return self.claim.acquired

    @property
    def fencing_token(self) -> int:
        return self.claim.fencing_token

    @property
    def lease_lost(self) -> bool:
        """True once a renewal found the lease gone: stop early if you can; the commit will fail."""
        return self._heartbeat is not None and self._heartbeat.lost.is_set()

    @property
    def outcome(self) -> Outcome[None]:
        if self._outcome is None:
            raise RuntimeError("the outcome of an acquired attempt is known only after its block ends")
        return self._outcome


class EffectivelyOnce:
    """Runs a handler once per id in `namespace` (per window), releasing on failure so a redelivery retries.

    lease_ms: the lease taken per message (renewed every renew_every_ms, default a third of it).
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
        window_ms: int = 0,
        encode: Callable[[Any], bytes | None] | None = None,
    ) -> None:
        self.client = client
        self.encode = encode
        self.namespace = namespace
        self.lease_ms = lease_ms
        self.window_ms = window_ms
        self._interval_s = renew_interval_s(lease_ms, renew_every_ms)

    @contextmanager
    def attempt(self, id: bytes | str, *, fingerprint: bytes | str | None = None) -> Iterator[Attempt]:
        """Claims `id`; commits when the block ends normally, releases (and re-raises) on an exception."""
        attempt = Attempt(self.client.claim(self.namespace, id, fingerprint=fingerprint, lease_ms=self.lease_ms))
        if not attempt.acquired:
            yield attempt
            return
        token = attempt.fencing_token
        attempt._heartbeat = _Heartbeat(
            lambda: self.client.renew(self.namespace, id, token, lease_ms=self.lease_ms).outcome, self._interval_s
        )
        try:
            yield attempt
        except BaseException:
            attempt._heartbeat.stop()
            self._release(id, token)
            raise
        attempt._heartbeat.stop()
        commit = self.client.commit(self.namespace, id, token, result=attempt.result, window_ms=self.window_ms)
        attempt._outcome = after_commit(commit.outcome, None, attempt.result, token)

    def _release(self, id: bytes | str, token: int) -> None:
        try:
            self.client.release(self.namespace, id, token)
        except DedupError as err:  # the lease ends by itself; the handler's error matters more
            log.warning("dedup: release after handler error failed: %s", err)

    def run(
        self, id: bytes | str, handler: Callable[[int], T], *, fingerprint: bytes | str | None = None
    ) -> Outcome[T]:
        """claim -> handler(fencing_token) -> commit (storing encode(value) if `encode` was given)."""
        with self.attempt(id, fingerprint=fingerprint) as attempt:
            if not attempt.acquired:
                return _retyped(attempt.outcome)
            value = handler(attempt.fencing_token)
            if self.encode is not None:
                attempt.result = self.encode(value)
        done = attempt.outcome
        return Outcome(done.status, value, done.stored_result, done.retry_after_ms, done.fencing_token)

    def handler(self, fn: Callable[Concatenate[int, P], T]) -> Callable[Concatenate[bytes | str, P], Outcome[T]]:
        """Decorator: `@once.handler def f(token, ...)` becomes `f(id, ...) -> Outcome`."""

        @functools.wraps(fn)
        def wrapper(id: bytes | str, /, *args: P.args, **kwargs: P.kwargs) -> Outcome[T]:
            return self.run(id, lambda token: fn(token, *args, **kwargs))

        return wrapper


def _retyped(outcome: Outcome[None]) -> Outcome[T]:
    return Outcome(outcome.status, None, outcome.stored_result, outcome.retry_after_ms, outcome.fencing_token)


__all__ = ["Attempt", "EffectivelyOnce", "Outcome", "Status"]
