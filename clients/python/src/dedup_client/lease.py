"""The lease a helper's handler holds: its fencing token, whether it is lost, and `ensure()`.

    def handler(lease: Lease) -> str:
        lease.ensure()                   # a synchronous Renew: raises LeaseLostError if the lease is gone
        write_downstream(token=lease.token)
        return "receipt"

`lease.lost` turns true once a renewal or `ensure()` found the lease gone (the
sidecar answered LEASE_LOST), or once the lease's time has run out by the local
clock without a renewal getting through (measured from before each Claim or
Renew was sent, so it never ends later than the sidecar's). `int(lease)` is the
token, so handlers written for a bare token keep working.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING

from dedup_client.errors import LeaseLostError
from dedup_client.results import RenewOutcome

if TYPE_CHECKING:
    from dedup_client.aio import AsyncDedupClient
    from dedup_client.client import DedupClient


class _LeaseBase:
    """State shared by the sync and asyncio leases; thread-safe."""

    def __init__(self, namespace: str, id: bytes | str, token: int, lease_ms: int, sent_at: float) -> None:
        if lease_ms <= 0:
            raise ValueError("the helper needs an explicit lease_ms > 0")
        self.namespace = namespace
        self.id = id
        self.token = token
        self.lease_ms = lease_ms
        self._lock = threading.Lock()
        self._expires_at = sent_at + lease_ms / 1000
        self._lost = False

    @property
    def lost(self) -> bool:
        """True once the sidecar said the lease is gone, or its time ran out without a renewal."""
        with self._lock:
            return self._lost or time.monotonic() >= self._expires_at

    @property
    def remaining_s(self) -> float:
        """Seconds left on the lease by the local clock (0 when lost)."""
        with self._lock:
            return 0.0 if self._lost else max(0.0, self._expires_at - time.monotonic())

    def _record(self, outcome: RenewOutcome, sent_at: float) -> bool:
        """Applies a Renew's answer; True while the lease is held."""
        with self._lock:
            if outcome is RenewOutcome.RENEWED:
                self._expires_at = max(self._expires_at, sent_at + self.lease_ms / 1000)
                return True
            self._lost = True
        self._on_lost()
        return False

    def _on_lost(self) -> None:
        """Hook for subclasses: wakes waiters."""

    def __int__(self) -> int:
        return self.token

    def __index__(self) -> int:
        return self.token

    def __repr__(self) -> str:
        return f"{type(self).__name__}(namespace={self.namespace!r}, id={self.id!r}, token={self.token})"


class Lease(_LeaseBase):
    """The lease of the sync helper (`EffectivelyOnce`)."""

    def __init__(
        self, client: DedupClient, namespace: str, id: bytes | str, token: int, lease_ms: int, sent_at: float
    ) -> None:
        super().__init__(namespace, id, token, lease_ms, sent_at)
        self._client = client
        self._gone = threading.Event()

    def renew(self, *, timeout: float | None = None) -> bool:
        """One Renew; True while the lease is held. Errors (UnavailableError ...) propagate."""
        sent_at = time.monotonic()
        result = self._client.renew(self.namespace, self.id, self.token, lease_ms=self.lease_ms, timeout=timeout)
        return self._record(result.outcome, sent_at)

    def ensure(self) -> None:
        """Renews now; raises LeaseLostError if the lease is gone (call it right before an unfenced effect).

        If the sidecar cannot be reached, its error (UnavailableError ...) propagates: the
        lease cannot be confirmed, so do not run the effect.
        """
        if not self.renew() or self.lost:
            raise LeaseLostError(f"lease of token {self.token} is lost")

    def wait_lost(self, timeout: float | None = None) -> bool:
        """Blocks until the lease is lost or `timeout` seconds pass; returns `lost`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.lost:
            left = self.remaining_s
            if deadline is not None:
                left = min(left, deadline - time.monotonic())
                if left <= 0:
                    break
            self._gone.wait(max(left, 0.001))
        return self.lost

    def _on_lost(self) -> None:
        self._gone.set()


class AsyncLease(_LeaseBase):
    """The lease of the asyncio helper (`AsyncEffectivelyOnce`).

    The handler is not cancelled when the lease is lost: cancelling a coroutine at
    an arbitrary await could leave its effect half done, which is worse than a
    finished effect whose commit reports LEASE_LOST. Check `lease.lost`, call
    `await lease.ensure()` before an unfenced effect, or race `lease.wait_lost()`.
    """

    def __init__(
        self, client: AsyncDedupClient, namespace: str, id: bytes | str, token: int, lease_ms: int, sent_at: float
    ) -> None:
        super().__init__(namespace, id, token, lease_ms, sent_at)
        self._client = client
        self._gone = asyncio.Event()

    async def renew(self, *, call_timeout: float | None = None) -> bool:
        """One Renew (deadline `call_timeout` s); True while the lease is held. Errors propagate."""
        sent_at = time.monotonic()
        result = await self._client.renew(
            self.namespace, self.id, self.token, lease_ms=self.lease_ms, timeout=call_timeout
        )
        return self._record(result.outcome, sent_at)

    async def ensure(self) -> None:
        """Renews now; raises LeaseLostError if the lease is gone."""
        if not await self.renew() or self.lost:
            raise LeaseLostError(f"lease of token {self.token} is lost")

    async def wait_lost(self) -> None:
        """Returns once the lease is lost (the sidecar said so, or its time ran out)."""
        while not self.lost:
            try:
                await asyncio.wait_for(self._gone.wait(), max(self.remaining_s, 0.001))
            except TimeoutError:
                continue

    def _on_lost(self) -> None:
        self._gone.set()
