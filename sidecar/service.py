"""The service layer: a request becomes validated store items, and store replies become decisions.

It knows policies (bounds, shadow, on_store_error) but neither gRPC nor Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

from sidecar.claim_wait import ClaimWaiting
from sidecar.domain.claim_waiters import ClaimWaiters
from sidecar.domain.errors import FieldViolation, InvalidArgument, StoreError, StoreTimeout
from sidecar.domain.keys import (
    DEFAULT_KEY_PREFIX,
    fence_base,
    quota_key,
    record_key,
    record_key_after,
    record_key_head,
    wake_channel,
)
from sidecar.domain.observer import NullObserver, Observer
from sidecar.domain.outcomes import (
    CheckDecision,
    CheckOutcome,
    ClaimDecision,
    ClaimOutcome,
    CommitDecision,
    CommitOutcome,
    Decision,
    ForgetOutcome,
    Inspection,
    ReleaseDecision,
    ReleaseOutcome,
    RenewDecision,
    RenewOutcome,
    as_shadow,
)
from sidecar.domain.policy import NamespacePolicy, PolicySet, StoreErrorMode
from sidecar.domain.requests import (
    AnyRequest,
    CheckRequest,
    ClaimRequest,
    CommitRequest,
    RecordRef,
    ReleaseRequest,
    RenewRequest,
    batch_size_violations,
    policy_violations,
    shape_violations,
)
from sidecar.domain.store import (
    CheckItem,
    ClaimItem,
    CommitItem,
    ItemResults,
    Quota,
    ReleaseItem,
    RenewItem,
    ReplicaAcks,
    Store,
)

D = TypeVar("D", bound=Decision)
I = TypeVar("I")  # noqa: E741 - a store item type

# What a namespace with `on_store_error: allow` answers when the store fails.
_DEGRADED: dict[str, Decision] = {
    "check": CheckDecision(CheckOutcome.NEW, degraded=True),
    "claim": ClaimDecision(ClaimOutcome.ACQUIRED, degraded=True),
    "commit": CommitDecision(CommitOutcome.COMMITTED, degraded=True),
    "release": ReleaseDecision(ReleaseOutcome.RELEASED, degraded=True),
    "renew": RenewDecision(RenewOutcome.RENEWED, degraded=True),
}


class PolicySource(Protocol):
    def current(self) -> PolicySet: ...


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    max_batch: int = 500
    key_prefix: str = DEFAULT_KEY_PREFIX


def _item_prefix(batch: bool, index: int) -> str:
    return f"items[{index}]." if batch else ""


def _prefixed(violations: list[FieldViolation], prefix: str) -> list[FieldViolation]:
    return [FieldViolation(prefix + v.field, v.description) for v in violations] if prefix else violations


class DedupService:
    """Check, Claim, Commit, Release, Renew, Inspect and Forget, single and batched."""

    def __init__(
        self,
        store: Store,
        policies: PolicySource,
        limits: ServiceLimits = ServiceLimits(),
        observer: Observer | None = None,
        waiters: ClaimWaiters | None = None,
    ) -> None:
        self._store = store
        self._policies = policies
        self._limits = limits
        self._observer: Observer = observer or NullObserver()
        # Waiting Claims (ADR 0065); without a wake subscriber feeding them, waits end by their timers.
        self.waiters = waiters if waiters is not None else ClaimWaiters()
        self._waiting = ClaimWaiting(store, self.waiters, wake_channel(limits.key_prefix))

    # -- validation -------------------------------------------------------

    def _resolve(self, requests: Sequence[AnyRequest], *, batch: bool) -> list[NamespacePolicy]:
        """The policy of each request; raises InvalidArgument/NamespaceNotFound, touching nothing."""
        violations: list[FieldViolation] = []
        if batch:
            violations += batch_size_violations(len(requests), self._limits.max_batch)
        # Per-item work is kept small (batches are the fast path): field prefixes are built only on failure.
        for index, request in enumerate(requests[: self._limits.max_batch]):
            if found := shape_violations(request):
                violations += _prefixed(found, _item_prefix(batch, index))
        if violations:
            raise InvalidArgument(violations)
        lookup = self._policies.current().lookup
        by_namespace: dict[str, NamespacePolicy] = {}
        policies = []
        for request in requests:
            policy = by_namespace.get(request.namespace)
            if policy is None:
                policy = by_namespace[request.namespace] = lookup(request.namespace)
            policies.append(policy)
        for index, (request, policy) in enumerate(zip(requests, policies, strict=True)):
            if found := policy_violations(request, policy):
                violations += _prefixed(found, _item_prefix(batch, index))
        if violations:
            raise InvalidArgument(violations)
        return policies

    def _key(self, request: AnyRequest) -> str:
        return record_key(self._limits.key_prefix, request.namespace, request.id)

    def _quota(self, namespace: str, policy: NamespacePolicy) -> Quota | None:
        if not policy.max_new_records:
            return None
        return Quota(quota_key(self._limits.key_prefix, namespace), policy.max_new_records, policy.quota_period_ms)

    def _label(self, namespace: str) -> str:
        return namespace if self._policies.current().known(namespace) else "default"

    def _report(self, operation: str, request: RecordRef, outcome: Inspection | ForgetOutcome) -> None:
        trace_ids = self._policies.current().lookup(request.namespace).trace_ids
        self._observer.decided(operation, self._label(request.namespace), outcome, request.id, trace_ids)

    # -- deciding ---------------------------------------------------------

    async def _decide(
        self,
        operation: str,
        requests: Sequence[AnyRequest],
        policies: Sequence[NamespacePolicy],
        call: Callable[[], Awaitable[ItemResults[D]]],
        timeout_s: float | None,
    ) -> ItemResults[D]:
        """Runs the store call within the deadline (None: the call bounds itself) and applies
        shadow and on_store_error per item."""
        results: ItemResults[D]
        try:
            async with asyncio.timeout(timeout_s):
                results = await call()
        except StoreError as err:
            results = [err] * len(requests)
        except TimeoutError:
            results = [StoreTimeout()] * len(requests)
        decided: ItemResults[D] = []
        reported: set[tuple[int, bool]] = set()
        labels: dict[str, str] = {}
        for request, policy, result in zip(requests, policies, results, strict=True):
            label = labels.get(request.namespace)
            if label is None:
                label = labels[request.namespace] = self._label(request.namespace)
            if isinstance(result, StoreError):
                # Only an outage may be answered degraded: not a quota refusal, not a permanent fault.
                degraded = policy.on_store_error is StoreErrorMode.ALLOW and result.degradable
                if (id(result), degraded) not in reported:
                    reported.add((id(result), degraded))
                    self._observer.store_failed(operation, label, result, degraded)
                if not degraded:
                    decided.append(result)
                    continue
                decision: Decision = _DEGRADED[operation]
            else:
                decision = result
            if policy.shadow:
                decision = as_shadow(decision)
            self._observer.decided(operation, label, decision, request.id, policy.trace_ids)
            decided.append(cast(D, decision))
        return decided

    @staticmethod
    def _single(results: ItemResults[D]) -> D:
        result = results[0]
        if isinstance(result, StoreError):
            raise result
        return result

    # -- operations -------------------------------------------------------

    def _check_items(
        self, requests: Sequence[CheckRequest], policies: Sequence[NamespacePolicy], trace: bytes
    ) -> list[CheckItem]:
        # Once per item of the bulk path: what depends on the namespace alone is worked out once
        # per namespace (a batch usually names one).
        shared: dict[str, tuple[str, int, bool, bool, ReplicaAcks, Quota | None]] = {}
        items = []
        for request, policy in zip(requests, policies, strict=True):
            namespace = request.namespace
            common = shared.get(namespace)
            if common is None:
                common = shared[namespace] = (
                    record_key_head(self._limits.key_prefix, namespace),
                    policy.window_ms,
                    policy.sliding_window,
                    policy.fingerprint_check,
                    policy.replica_acks,
                    self._quota(namespace, policy),
                )
            head, window_ms, sliding, fingerprint_check, acks, quota = common
            items.append(
                CheckItem(
                    record_key_after(head, request.id),
                    request.window_ms or window_ms,
                    sliding,
                    fingerprint_check,
                    request.fingerprint,
                    trace,
                    acks,
                    quota,
                )
            )
        return items

    def _claim_items(
        self, requests: Sequence[ClaimRequest], policies: Sequence[NamespacePolicy], trace: bytes
    ) -> list[ClaimItem]:
        return [
            ClaimItem(
                key=self._key(request),
                lease_ms=request.lease_ms or policy.lease_ms,
                sliding=policy.sliding_window,
                fingerprint_check=policy.fingerprint_check,
                fingerprint=request.fingerprint,
                trace_context=trace,
                acks=policy.replica_acks,
                quota=self._quota(request.namespace, policy),
                fence=fence_base(self._limits.key_prefix),
            )
            for request, policy in zip(requests, policies, strict=True)
        ]

    def _commit_items(
        self, requests: Sequence[CommitRequest], policies: Sequence[NamespacePolicy], trace: bytes
    ) -> list[CommitItem]:
        return [
            CommitItem(
                key=self._key(request),
                fencing_token=request.fencing_token,
                window_ms=request.window_ms or policy.window_ms,
                sliding=policy.sliding_window,
                result=request.result,
                trace_context=trace,
                acks=policy.replica_acks,
            )
            for request, policy in zip(requests, policies, strict=True)
        ]

    async def check_batch(
        self, requests: Sequence[CheckRequest], *, timeout_s: float, trace: bytes = b"", batch: bool = True
    ) -> ItemResults[CheckDecision]:
        policies = self._resolve(requests, batch=batch)
        items = self._check_items(requests, policies, trace)
        return await self._decide("check", requests, policies, lambda: self._store.check(items), timeout_s)

    async def claim_batch(
        self,
        requests: Sequence[ClaimRequest],
        *,
        timeout_s: float,
        trace: bytes = b"",
        batch: bool = True,
        wait_limit_s: float | None = None,
    ) -> ItemResults[ClaimDecision]:
        """`wait_limit_s`: how long any item may wait, whatever its wait_ms (a unary call's deadline
        less 100 ms); None: wait_ms alone bounds the wait (Stream messages)."""
        policies = self._resolve(requests, batch=batch)
        items = self._claim_items(requests, policies, trace)
        waits = [0 if policy.shadow else request.wait_ms for request, policy in zip(requests, policies, strict=True)]
        if wait_limit_s is not None:
            waits = [min(wait, max(int(wait_limit_s * 1000), 0)) for wait in waits]
        if not any(waits):
            return await self._decide("claim", requests, policies, lambda: self._store.claim(items), timeout_s)
        labels = [self._label(request.namespace) for request in requests]
        return await self._decide(
            "claim", requests, policies, lambda: self._waiting.claim(items, waits, labels, timeout_s), None
        )

    async def commit_batch(
        self, requests: Sequence[CommitRequest], *, timeout_s: float, trace: bytes = b"", batch: bool = True
    ) -> ItemResults[CommitDecision]:
        policies = self._resolve(requests, batch=batch)
        items = self._commit_items(requests, policies, trace)
        return await self._decide("commit", requests, policies, lambda: self._store.commit(items), timeout_s)

    async def check(self, request: CheckRequest, *, timeout_s: float, trace: bytes = b"") -> CheckDecision:
        return self._single(await self.check_batch([request], timeout_s=timeout_s, trace=trace, batch=False))

    async def claim(
        self, request: ClaimRequest, *, timeout_s: float, trace: bytes = b"", wait_limit_s: float | None = None
    ) -> ClaimDecision:
        return self._single(
            await self.claim_batch([request], timeout_s=timeout_s, trace=trace, batch=False, wait_limit_s=wait_limit_s)
        )

    async def commit(self, request: CommitRequest, *, timeout_s: float, trace: bytes = b"") -> CommitDecision:
        return self._single(await self.commit_batch([request], timeout_s=timeout_s, trace=trace, batch=False))

    async def release(self, request: ReleaseRequest, *, timeout_s: float) -> ReleaseDecision:
        policies = self._resolve([request], batch=False)
        item = ReleaseItem(key=self._key(request), fencing_token=request.fencing_token, acks=policies[0].replica_acks)

        async def call() -> ItemResults[ReleaseDecision]:
            return [await self._store.release(item)]

        return self._single(await self._decide("release", [request], policies, call, timeout_s))

    async def renew(self, request: RenewRequest, *, timeout_s: float) -> RenewDecision:
        policies = self._resolve([request], batch=False)
        item = RenewItem(
            key=self._key(request),
            fencing_token=request.fencing_token,
            lease_ms=request.lease_ms or policies[0].lease_ms,
            acks=policies[0].replica_acks,
        )

        async def call() -> ItemResults[RenewDecision]:
            return [await self._store.renew(item)]

        return self._single(await self._decide("renew", [request], policies, call, timeout_s))

    async def _read(
        self, operation: str, request: RecordRef, call: Callable[[str], Awaitable[I]], timeout_s: float
    ) -> I:
        """Inspect and Forget: no degraded or shadow answers, store errors always raise."""
        self._resolve([request], batch=False)
        try:
            async with asyncio.timeout(timeout_s):
                return await call(self._key(request))
        except TimeoutError:
            error: StoreError = StoreTimeout()
        except StoreError as err:
            error = err
        self._observer.store_failed(operation, self._label(request.namespace), error, False)
        raise error

    async def inspect(self, request: RecordRef, *, timeout_s: float) -> Inspection:
        inspection = await self._read("inspect", request, self._store.inspect, timeout_s)
        self._report("inspect", request, inspection)
        return inspection

    async def forget(self, request: RecordRef, *, timeout_s: float) -> ForgetOutcome:
        outcome = await self._read("forget", request, self._store.forget, timeout_s)
        self._report("forget", request, outcome)
        return outcome
