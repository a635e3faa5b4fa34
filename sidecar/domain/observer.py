"""What the service reports as it decides: telemetry and logs subscribe here.

`namespace` is always a bounded label: the namespace's own name when it has a
policy of its own, else "default" (never a raw request string). `record_id` is
the raw id the decision is about; an observer may show it only as the
namespace's `trace_ids` allows (raw, hash or omit).
"""

from __future__ import annotations

from typing import Protocol

from sidecar.domain.errors import StoreError
from sidecar.domain.outcomes import Decision, ForgetOutcome, Inspection
from sidecar.domain.policy import TraceIds


class Observer(Protocol):
    def decided(
        self,
        operation: str,
        namespace: str,
        decision: Decision | Inspection | ForgetOutcome,
        record_id: bytes = b"",
        trace_ids: TraceIds = TraceIds.OMIT,
    ) -> None:
        """A decision was made (degraded and shadow decisions included)."""

    def store_failed(self, operation: str, namespace: str, error: StoreError, degraded: bool) -> None:
        """The store failed; `degraded` says the namespace answered anyway (on_store_error: allow)."""


class NullObserver:
    def decided(
        self,
        operation: str,
        namespace: str,
        decision: Decision | Inspection | ForgetOutcome,
        record_id: bytes = b"",
        trace_ids: TraceIds = TraceIds.OMIT,
    ) -> None:
        pass

    def store_failed(self, operation: str, namespace: str, error: StoreError, degraded: bool) -> None:
        pass
