"""Log lines for the notable decisions: store errors, degraded answers, lost leases.

Each line carries the trace and span ids (logs.py adds them) and the id only as
the namespace's `trace_ids` allows.
"""

from __future__ import annotations

import logging

from sidecar.domain.errors import StoreError, StoreFault
from sidecar.domain.outcomes import CommitOutcome, Decision, ForgetOutcome, Inspection, ReleaseOutcome, RenewOutcome
from sidecar.domain.policy import TraceIds
from sidecar.telemetry import outcomes
from sidecar.telemetry.ids import shown_id

log = logging.getLogger("dedup.decisions")

_LEASE_LOST = frozenset({CommitOutcome.LEASE_LOST, ReleaseOutcome.LEASE_LOST, RenewOutcome.LEASE_LOST})


def _fields(operation: str, namespace: str, record_id: bytes, trace_ids: TraceIds) -> dict[str, object]:
    fields: dict[str, object] = {"operation": operation, "namespace": namespace}
    shown = shown_id(trace_ids, record_id)
    if shown is not None:
        fields[shown[0].removeprefix("dedup.")] = shown[1]
    return fields


class LogObserver:
    def decided(
        self,
        operation: str,
        namespace: str,
        decision: Decision | Inspection | ForgetOutcome,
        record_id: bytes = b"",
        trace_ids: TraceIds = TraceIds.OMIT,
    ) -> None:
        if getattr(decision, "degraded", False):
            fields = _fields(operation, namespace, record_id, trace_ids)
            log.warning("degraded answer: the store failed, answering %s", outcomes.answered(decision), extra=fields)
        elif (getattr(decision, "shadow_outcome", None) or getattr(decision, "outcome", None)) in _LEASE_LOST:
            log.warning(
                "lease lost: the holder's token is stale", extra=_fields(operation, namespace, record_id, trace_ids)
            )

    def store_failed(self, operation: str, namespace: str, error: StoreError, degraded: bool) -> None:
        if isinstance(error, StoreFault):
            return  # a permanent fault: logged once per key by the store adapter (redis_store/faults.py)
        log.warning(
            "store error",
            extra={"operation": operation, "namespace": namespace, "kind": error.kind, "error": str(error),
                   "degraded": degraded},
        )  # fmt: skip
