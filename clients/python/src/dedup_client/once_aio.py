"""The effectively-once helper for asyncio: the same contract as dedup_client.once.

once = AsyncEffectivelyOnce(client, "payments.charge")
outcome = await once.run(message.id, lambda token: charge(message, token))  # charge is async

@once.handler
async def charge(token: int, message: Message) -> Receipt: ...
outcome = await charge(message.id, message)

async with once.attempt(message.id) as attempt:
    if attempt.acquired:
        attempt.result = await charge(message, attempt.fencing_token)
outcome = attempt.outcome
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from dedup_client.aio import AsyncDedupClient
from dedup_client.errors import DedupError
from dedup_client.once import DEFAULT_LEASE_MS, Attempt, _retyped, log
from dedup_client.outcome import Outcome, after_commit, renew_interval_s
from dedup_client.results import RenewOutcome

T = TypeVar("T")
P = ParamSpec("P")


class _AsyncHeartbeat:
    """Renews one lease from a task until stopped or the lease is lost."""

    def __init__(self, renew: Callable[[], Awaitable[RenewOutcome]], interval_s: float) -> None:
        self._renew = renew
        self._interval_s = interval_s
        self.lost = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="dedup-renew")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)  # the heartbeat period
            try:
                if await self._renew() is RenewOutcome.LEASE_LOST:
                    self.lost.set()
                    return
            except DedupError as err:
                log.warning("dedup: lease renewal failed: %s", err)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class AsyncAttempt(Attempt):
    """Attempt for `async with once.attempt(id) as attempt:`."""

    _async_heartbeat: _AsyncHeartbeat | None = None

    @property
    def lease_lost(self) -> bool:
        return self._async_heartbeat is not None and self._async_heartbeat.lost.is_set()


class AsyncEffectivelyOnce:
    """asyncio twin of EffectivelyOnce (same arguments, awaitable handlers)."""

    def __init__(
        self,
        client: AsyncDedupClient,
        namespace: str,
        *,
        lease_ms: int = DEFAULT_LEASE_MS,
        renew_every_ms: int | None = None,
        window_ms: int = 0,
        encode: Callable[[Any], bytes | None] | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.lease_ms = lease_ms
        self.window_ms = window_ms
        self.encode = encode
        self._interval_s = renew_interval_s(lease_ms, renew_every_ms)

    @contextlib.asynccontextmanager
    async def attempt(self, id: bytes | str, *, fingerprint: bytes | str | None = None) -> AsyncIterator[AsyncAttempt]:
        """Claims `id`; commits when the block ends normally, releases (and re-raises) on an exception."""
        claim = await self.client.claim(self.namespace, id, fingerprint=fingerprint, lease_ms=self.lease_ms)
        attempt = AsyncAttempt(claim)
        if not attempt.acquired:
            yield attempt
            return
        token = attempt.fencing_token

        async def renew() -> RenewOutcome:
            return (await self.client.renew(self.namespace, id, token, lease_ms=self.lease_ms)).outcome

        heartbeat = attempt._async_heartbeat = _AsyncHeartbeat(renew, self._interval_s)
        try:
            yield attempt
        except BaseException:
            await heartbeat.stop()
            await self._release(id, token)
            raise
        await heartbeat.stop()
        commit = await self.client.commit(self.namespace, id, token, result=attempt.result, window_ms=self.window_ms)
        attempt._outcome = after_commit(commit.outcome, None, attempt.result, token)

    async def _release(self, id: bytes | str, token: int) -> None:
        try:
            await self.client.release(self.namespace, id, token)
        except DedupError as err:
            log.warning("dedup: release after handler error failed: %s", err)

    async def run(
        self, id: bytes | str, handler: Callable[[int], Awaitable[T]], *, fingerprint: bytes | str | None = None
    ) -> Outcome[T]:
        """claim -> await handler(fencing_token) -> commit (storing encode(value) if `encode` was given)."""
        async with self.attempt(id, fingerprint=fingerprint) as attempt:
            if not attempt.acquired:
                return _retyped(attempt.outcome)
            value = await handler(attempt.fencing_token)
            if self.encode is not None:
                attempt.result = self.encode(value)
        done = attempt.outcome
        return Outcome(done.status, value, done.stored_result, done.retry_after_ms, done.fencing_token)

    def handler(
        self, fn: Callable[Concatenate[int, P], Awaitable[T]]
    ) -> Callable[Concatenate[bytes | str, P], Awaitable[Outcome[T]]]:
        """Decorator: `@once.handler async def f(token, ...)` becomes `await f(id, ...) -> Outcome`."""

        @functools.wraps(fn)
        async def wrapper(id: bytes | str, /, *args: P.args, **kwargs: P.kwargs) -> Outcome[T]:
            return await self.run(id, lambda token: fn(token, *args, **kwargs))

        return wrapper
