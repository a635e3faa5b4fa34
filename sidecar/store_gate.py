"""The store checks, and the gate every store call passes: no read or write on an unsafe store.

The checks (redis_store/safety.py) run at startup, on every health probe, and before the next
call once any call saw the store fail (it may have come back as another server, e.g. restarted
with an evicting maxmemory-policy, or a failover). While the latest check says unsafe and
--allow-unsafe-store is off, every call fails with StoreUnsafe (UNAVAILABLE, with the reason).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sidecar.domain.errors import StoreError, StoreUnsafe
from sidecar.domain.outcomes import (
    CheckDecision,
    ClaimDecision,
    CommitDecision,
    ForgetOutcome,
    Inspection,
    ReleaseDecision,
    RenewDecision,
)
from sidecar.domain.store import CheckItem, ClaimItem, CommitItem, ItemResults, ReleaseItem, RenewItem
from sidecar.policies_file import PolicyFile
from sidecar.redis_store.acks import choose_mode, describe_acks
from sidecar.redis_store.factory import inspect_any
from sidecar.redis_store.safety import StoreReport
from sidecar.redis_store.store import RedisStore

log = logging.getLogger("dedup.serve")

T = TypeVar("T")


@dataclass
class StoreGate:
    """Runs the store checks and remembers whether the store may be used."""

    store: RedisStore
    allow_unsafe: bool
    ack_command: str = "auto"
    policies: PolicyFile | None = None
    report: StoreReport | None = None
    safe: bool = False
    needs_check: bool = True
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _checking: asyncio.Future[None] | None = None

    async def run_checks(self) -> StoreReport:
        report = await inspect_any(self.store.client)
        if report != self.report or self.needs_check:  # logged when it changes, not every probe
            level = logging.INFO if report.safe and not report.warnings else logging.WARNING
            for line in report.lines():
                log.log(level, "store check: %s", line)
            self.store.ack_mode = choose_mode(self.ack_command, report)
            self.store.use_server(report.version)  # Check without Lua needs 7.0+ (ADR 0071)
            for line in describe_acks(self.store.ack_mode, self.policies.current() if self.policies else None):
                log.info("store check: %s", line)
            if not report.safe and self.allow_unsafe:
                log.warning("SERVING ON AN UNSAFE STORE because --allow-unsafe-store is set: duplicates may be missed")
            elif not report.safe:
                log.error("store check: UNSAFE, refusing every call until a check passes: %s", self.reason(report))
        self.report = report
        self.safe = report.safe or self.allow_unsafe
        self.needs_check = False
        return report

    @staticmethod
    def reason(report: StoreReport | None) -> str:
        return "; ".join(report.problems) if report is not None else "the store has not been checked"

    async def probe(self) -> bool:
        """Health probe: the store answers and its checks pass (they run every time: cheap, and current)."""
        async with self._lock:
            try:
                await self.run_checks()
            except StoreError as err:
                if not self.needs_check:
                    log.warning("store unreachable", extra={"kind": err.kind, "error": str(err)})
                self.needs_check = True
                return False
            return self.safe

    async def ensure_safe(self) -> None:
        """Before a store call: check again if the store failed since, refuse if it is unsafe.

        One check at a time, shared by every call that needs it (during an outage calls do not
        queue up behind one check each); a call whose deadline ends does not cancel it.
        """
        if self.needs_check:
            if self._checking is None or self._checking.done():
                self._checking = asyncio.ensure_future(self._check_now())
                self._checking.add_done_callback(lambda done: done.cancelled() or done.exception())
            try:
                await asyncio.shield(self._checking)
            except StoreError as err:
                raise StoreError(err.kind, f"store not verified since it failed: {err}") from err
        if not self.safe:
            raise StoreUnsafe(self.reason(self.report))

    async def _check_now(self) -> None:
        async with self._lock:
            if self.needs_check:
                await self.run_checks()

    def saw(self, error: StoreError) -> None:
        """A call failed: if it was an outage, the store may come back as something else."""
        if error.degradable:
            self.needs_check = True


class GatedStore:
    """The store port, each call behind StoreGate.ensure_safe; outages seen by calls re-arm the checks."""

    def __init__(self, store: RedisStore, gate: StoreGate) -> None:
        self._store = store
        self._gate = gate

    def _seen(self, results: ItemResults[T]) -> ItemResults[T]:
        for result in results:
            if isinstance(result, StoreError):
                self._gate.saw(result)
        return results

    async def _call(self, call: Any, *args: Any) -> Any:
        await self._gate.ensure_safe()
        try:
            return await call(*args)
        except StoreError as err:
            self._gate.saw(err)
            raise

    async def check(self, items: Sequence[CheckItem]) -> ItemResults[CheckDecision]:
        return self._seen(await self._call(self._store.check, items))

    async def claim(self, items: Sequence[ClaimItem]) -> ItemResults[ClaimDecision]:
        return self._seen(await self._call(self._store.claim, items))

    async def commit(self, items: Sequence[CommitItem]) -> ItemResults[CommitDecision]:
        return self._seen(await self._call(self._store.commit, items))

    async def release(self, item: ReleaseItem) -> ReleaseDecision:
        decision: ReleaseDecision = await self._call(self._store.release, item)
        return decision

    async def renew(self, item: RenewItem) -> RenewDecision:
        decision: RenewDecision = await self._call(self._store.renew, item)
        return decision

    async def inspect(self, key: str) -> Inspection:
        inspection: Inspection = await self._call(self._store.inspect, key)
        return inspection

    async def forget(self, key: str) -> ForgetOutcome:
        outcome: ForgetOutcome = await self._call(self._store.forget, key)
        return outcome

    async def ping(self) -> None:
        await self._store.ping()

    async def close(self) -> None:
        await self._store.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)  # anything else the service may use, unguarded
