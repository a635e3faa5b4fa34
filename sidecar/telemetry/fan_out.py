"""Several observers as one."""

from __future__ import annotations

from sidecar.domain.errors import StoreError
from sidecar.domain.observer import Observer
from sidecar.domain.outcomes import Decision, ForgetOutcome, Inspection
from sidecar.domain.policy import TraceIds


class FanOut:
    def __init__(self, *observers: Observer) -> None:
        self._observers = observers

    def decided(
        self,
        operation: str,
        namespace: str,
        decision: Decision | Inspection | ForgetOutcome,
        record_id: bytes = b"",
        trace_ids: TraceIds = TraceIds.OMIT,
    ) -> None:
        for observer in self._observers:
            observer.decided(operation, namespace, decision, record_id, trace_ids)

    def store_failed(self, operation: str, namespace: str, error: StoreError, degraded: bool) -> None:
        for observer in self._observers:
            observer.store_failed(operation, namespace, error, degraded)
