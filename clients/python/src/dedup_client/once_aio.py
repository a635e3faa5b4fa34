"""The effectively-once helper for asyncio: the same rules as dedup_client.once.

once = AsyncEffectivelyOnce(client, "payments.charge")
outcome = await once.run(message.id, lambda lease: charge(message, lease.token))  # charge is async

@once.handler
async def charge(lease: AsyncLease, message: Message) -> Receipt: ...
outcome = await charge(message.id, message)

async with once.attempt(message.id) as attempt:
    if attempt.lease is not None:
        attempt.result = await charge(message, attempt.lease.token)
outcome = attempt.outcome

The handler is not cancelled when its lease is lost (see AsyncLease): it sees
`lease.lost`, can `await lease.ensure()` and `await lease.wait_lost()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from dedup_client.aio import AsyncDedupClient
from dedup_client.errors import DedupError
from dedup_client.lease import AsyncLease
from dedup_client.once import (
    DEFAULT_LEASE_MS,
    DEFAULT_WAIT_MS,
    UNREACHABLE,
    CommitBackoff,
    _retyped,
    log,
    not_recorded,
)
from dedup_client.outcome import Outcome, Status, not_acquired, renew_interval_s
from dedup_client.results import ClaimResult, CommitOutcome

T = TypeVar("T")
P = ParamSpec("P")


class _AsyncHeartbeat:
    """Renews one lease from a task until stopped or the lease is lost."""

    def __init__(self, lease: AsyncLease, interval_s: float) -> None:
        self._lease = lease
        self._interval_s = interval_s
        # a renewal that hangs (a frozen sidecar) must not hold up the next one, nor stop()
        self._renew_timeout_s = max(0.5, min(interval_s, 5.0))
        self._task = asyncio.create_task(self._run(), name="dedup-renew")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)  # the heartbeat period
            try:
                if not await self._lease.renew(call_timeout=self._renew_timeout_s):
                    return
            except DedupError as err:
                log.warning("dedup: lease renewal failed: %s", err)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class AsyncAttempt:
    """One claim, as seen inside `async with once.attempt(id) as attempt:` (see dedup_client.once.Attempt)."""

    def __init__(self, claim: ClaimResult, lease: AsyncLease | None = None) -> None:
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
        return self.lease is not None and self.lease.lost

    @property
    def outcome(self) -> Outcome[None]:
        if self._outcome is None:
            raise RuntimeError("the outcome of an acquired attempt is known only after its block ends")
        return self._outcome


class AsyncEffectivelyOnce:
    """asyncio twin of EffectivelyOnce (same arguments and rules, awaitable handlers)."""

    def __init__(
        self,
        client: AsyncDedupClient,
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
        self.namespace = namespace
        self.lease_ms = lease_ms
        self.wait_ms = wait_ms
        self.window_ms = window_ms
        self.encode = encode
        self._interval_s = renew_interval_s(lease_ms, renew_every_ms)

    @contextlib.asynccontextmanager
    async def attempt(self, id: bytes | str, *, fingerprint: bytes | str | None = None) -> AsyncIterator[AsyncAttempt]:
        """Claims `id`; commits when the block ends normally, releases (and re-raises) on an exception."""
        sent_at = time.monotonic()
        claim = await self.client.claim(
            self.namespace,
            id,
            fingerprint=fingerprint,
            lease_ms=self.lease_ms,
            wait_ms=self.wait_ms,
            timeout=self.wait_ms / 1000 + self.client.default_timeout,
        )
        if not claim.acquired:
            yield AsyncAttempt(claim)
            return
        lease = AsyncLease(self.client, self.namespace, id, claim.fencing_token, self.lease_ms, sent_at)
        attempt = AsyncAttempt(claim, lease)
        heartbeat = _AsyncHeartbeat(lease, self._interval_s)
        try:
            try:
                yield attempt
            except BaseException:
                await heartbeat.stop()
                await self._release(lease)
                raise
            attempt._outcome = await self._commit(lease, fingerprint, attempt.result)
        finally:
            await heartbeat.stop()

    async def _release(self, lease: AsyncLease) -> None:
        try:
            await self.client.release(self.namespace, lease.id, lease.token)
        except DedupError as err:
            log.warning("dedup: release after handler error failed: %s", err)

    async def _commit(
        self, lease: AsyncLease, fingerprint: bytes | str | None, result: bytes | None, *, reclaimed: bool = False
    ) -> Outcome[None]:
        backoff = CommitBackoff()
        while True:
            try:
                commit = await self.client.commit(
                    self.namespace, lease.id, lease.token, result=result, window_ms=self.window_ms
                )
            except UNREACHABLE as err:
                if lease.remaining_s <= 0:
                    if reclaimed:
                        raise not_recorded(err) from err
                    return await self._reclaim(lease, fingerprint, result, err)
                log.warning("dedup: commit failed, retrying within the lease: %s", err)
                await asyncio.sleep(min(backoff.next(), lease.remaining_s))  # backoff between commit attempts
                continue
            if commit.outcome is CommitOutcome.COMMITTED:
                return Outcome(Status.PROCESSED, stored_result=result, fencing_token=lease.token)
            if reclaimed:
                return Outcome(Status.LEASE_LOST, stored_result=result, fencing_token=lease.token)
            return await self._reclaim(lease, fingerprint, result, None)

    async def _reclaim(
        self, lease: AsyncLease, fingerprint: bytes | str | None, result: bytes | None, unreachable: DedupError | None
    ) -> Outcome[None]:
        sent_at = time.monotonic()
        try:
            claim = await self.client.claim(self.namespace, lease.id, fingerprint=fingerprint, lease_ms=self.lease_ms)
        except UNREACHABLE as err:
            raise not_recorded(unreachable or err) from err
        if not claim.acquired:
            log.warning("dedup: lease lost before commit; the id is now %s", claim.outcome)
            return Outcome(Status.LEASE_LOST, stored_result=result, fencing_token=lease.token)
        fresh = AsyncLease(self.client, self.namespace, lease.id, claim.fencing_token, self.lease_ms, sent_at)
        return await self._commit(fresh, fingerprint, result, reclaimed=True)

    async def run(
        self,
        id: bytes | str,
        handler: Callable[[AsyncLease], Awaitable[T]],
        *,
        fingerprint: bytes | str | None = None,
    ) -> Outcome[T]:
        """claim -> await handler(lease) -> commit (storing encode(value) if `encode` was given)."""
        async with self.attempt(id, fingerprint=fingerprint) as attempt:
            if attempt.lease is None:
                return _retyped(attempt.outcome)
            value = await handler(attempt.lease)
            if self.encode is not None:
                attempt.result = self.encode(value)
        return attempt.outcome.with_value(value)

    def handler(
        self, fn: Callable[Concatenate[AsyncLease, P], Awaitable[T]]
    ) -> Callable[Concatenate[bytes | str, P], Awaitable[Outcome[T]]]:
        """Decorator: `@once.handler async def f(lease, ...)` becomes `await f(id, ...) -> Outcome`."""

        @functools.wraps(fn)
        async def wrapper(id: bytes | str, /, *args: P.args, **kwargs: P.kwargs) -> Outcome[T]:
            return await self.run(id, lambda lease: fn(lease, *args, **kwargs))

        return wrapper
