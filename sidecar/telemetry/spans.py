"""Dedup attributes and links on the RPC's server span, and the Redis child span.

`TelemetryHandlers` (interceptors.py) starts the server span and, when it is
recorded, puts a `CallSpan` in a context variable for the call.
The service reports each decision to `SpanObserver`, which adds it to the
current call's `CallSpan`; when the RPC ends, the CallSpan writes either the
single decision's attributes (unary RPCs) or per-outcome counts (batches and
streams: no per-item explosion). With tracing off no CallSpan exists, and
every hook here returns after one context-variable lookup.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field

from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from sidecar.domain.errors import StoreError
from sidecar.domain.outcomes import Decision, ForgetOutcome, Inspection
from sidecar.domain.policy import TraceIds
from sidecar.telemetry import outcomes, trace_context
from sidecar.telemetry.current import CURRENT_CALL
from sidecar.telemetry.ids import shown_id

# Outcomes whose span links to the span that first saw (or committed) the record.
LINKED_OUTCOMES = frozenset({"DUPLICATE", "IN_PROGRESS"})
# A batch or stream span links to at most this many originals.
MAX_AGGREGATE_LINKS = 16


@dataclass(slots=True)
class CallSpan:
    """What one RPC decided, written to its span when the RPC ends."""

    span: Span
    tracer: Tracer
    aggregate: bool  # batch and stream RPCs: counts instead of one decision's attributes
    attributes: dict[str, str | int | bool] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    namespaces: set[str] = field(default_factory=set)
    links: int = 0
    links_dropped: int = 0

    def add(
        self, operation: str, namespace: str, decision: Decision | Inspection | ForgetOutcome, attrs: Attrs
    ) -> None:
        answered = outcomes.answered(decision)
        degraded = outcomes.is_degraded(decision)
        self._link(answered, outcomes.decided(decision), decision)
        if self.aggregate:
            self.namespaces.add(namespace)
            self.counts[f"dedup.count.{operation}.{outcomes.decided(decision).lower()}"] += 1
            if degraded:
                self.counts["dedup.count.degraded"] += 1
            return
        self.attributes.update(attrs.single(operation, namespace, decision, answered, degraded))

    def failed(self, error: StoreError, degraded: bool) -> None:
        self.attributes["dedup.store_error"] = error.kind
        if degraded:
            self.attributes["dedup.degraded"] = True

    def _link(self, answered: str, decided: str, decision: object) -> None:
        if decided not in LINKED_OUTCOMES:
            return
        original = trace_context.decode(getattr(decision, "trace_context", b""))
        if original is None:
            return
        if self.aggregate and self.links >= MAX_AGGREGATE_LINKS:
            self.links_dropped += 1
            return
        self.links += 1
        self.span.add_link(original, {"dedup.link": "original", "dedup.outcome": decided})

    def finish(self) -> None:
        if self.aggregate:
            self.attributes.update(self.counts)
            self.attributes["dedup.items"] = sum(v for k, v in self.counts.items() if k != "dedup.count.degraded")
            if len(self.namespaces) == 1:
                self.attributes["dedup.namespace"] = next(iter(self.namespaces))
            elif self.namespaces:
                self.attributes["dedup.namespace"] = ",".join(sorted(self.namespaces))
            if self.links_dropped:
                self.attributes["dedup.links_dropped"] = self.links_dropped
        if self.attributes:
            self.span.set_attributes(self.attributes)


@dataclass(frozen=True, slots=True)
class Attrs:
    """The attributes of one decision on a unary RPC's span."""

    record_id: bytes
    trace_ids: TraceIds

    def single(
        self,
        operation: str,
        namespace: str,
        decision: Decision | Inspection | ForgetOutcome,
        answered: str,
        degraded: bool,
    ) -> dict[str, str | int | bool]:
        out: dict[str, str | int | bool] = {
            "dedup.operation": operation,
            "dedup.namespace": namespace,
            "dedup.outcome": answered,
            "dedup.degraded": degraded,
        }
        decided = outcomes.decided(decision)
        if decided != answered:
            out["dedup.shadow_outcome"] = decided
        token = getattr(decision, "fencing_token", 0)
        if token:
            out["dedup.fencing_token"] = token
        if decided in ("DUPLICATE", "IN_PROGRESS", "CONFLICT"):
            out["dedup.duplicate_age_ms"] = getattr(decision, "age_ms", 0)
        shown = shown_id(self.trace_ids, self.record_id)
        if shown is not None:
            out[shown[0]] = shown[1]
        return out


class SpanObserver:
    """Adds each decision to the current RPC's CallSpan (a no-op outside a traced RPC)."""

    def decided(
        self,
        operation: str,
        namespace: str,
        decision: Decision | Inspection | ForgetOutcome,
        record_id: bytes = b"",
        trace_ids: TraceIds = TraceIds.OMIT,
    ) -> None:
        call = CURRENT_CALL.get()
        if call is not None:
            call.add(operation, namespace, decision, Attrs(record_id, trace_ids))

    def store_failed(self, operation: str, namespace: str, error: StoreError, degraded: bool) -> None:
        call = CURRENT_CALL.get()
        if call is not None:
            call.failed(error, degraded)


_NO_SPAN = contextlib.nullcontext()


def store_span(script: str, keys: int, operation: str = "EVALSHA") -> contextlib.AbstractContextManager[object]:
    """A client span for one Redis call (a script, or the SETs of Check without Lua), child of the
    RPC's span; a shared no-op when untraced."""
    call = CURRENT_CALL.get()
    if call is None:
        return _NO_SPAN
    return _StoreSpan(call.tracer, script, keys, operation)


class _StoreSpan:
    """The Redis span: started as a child of the current (server) span, never made current itself
    (nothing runs inside it that could be its child), so no context attach and detach."""

    __slots__ = ("_span",)

    def __init__(self, tracer: Tracer, script: str, keys: int, operation: str) -> None:
        attributes: dict[str, str | int] = {
            "db.system": "redis",
            "db.operation": operation,
            "dedup.script": script,
            "dedup.keys": keys,
        }
        self._span = tracer.start_span(f"{operation} {script}", kind=SpanKind.CLIENT, attributes=attributes)

    def __enter__(self) -> Span:
        return self._span

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> None:
        if isinstance(error, Exception):  # as start_as_current_span records it
            self._span.record_exception(error)
            self._span.set_status(Status(StatusCode.ERROR, f"{kind.__name__ if kind else ''}: {error}"))
        self._span.end()
