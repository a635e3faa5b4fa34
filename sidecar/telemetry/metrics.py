"""The metrics of docs/contract.md §7, exported through OpenTelemetry (to Prometheus and/or OTLP).

Prometheus names (the OTLP names drop `_total`/`_seconds`):
  dedup_decisions_total{namespace,operation,outcome}  what the store decided (shadow: the real outcome)
  dedup_degraded_total{namespace,operation}            answers given without the store (on_store_error: allow)
  dedup_store_errors_total{operation,kind}             store failures, once per failed store call
  dedup_lease_lost_total{namespace,operation}          commit/release/renew by a holder that lost its lease
  dedup_duplicate_age_seconds{namespace}               age of the original when a DUPLICATE arrived
  dedup_window_seconds{namespace}                      each namespace's default window (compare with the age)
  dedup_rpc_duration_seconds{method,operation,code}    latency at the server: per unary RPC, and per Stream message
  dedup_claim_waiters                                  Claims waiting for a holder now (wait_ms; ADR 0065)
  dedup_claim_wait_total{namespace,ended}              how waits ended: committed, released, expired, timeout, ...
Every `namespace` label is a policy name or "default", so cardinality is bounded by the policies file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from sidecar.domain.claim_waiters import ClaimWaiters
from sidecar.domain.errors import StoreError
from sidecar.domain.outcomes import Decision, ForgetOutcome, Inspection
from sidecar.domain.policy import PolicySet, TraceIds
from sidecar.telemetry import outcomes
from sidecar.telemetry.histograms import Histogram

# Seconds. Fine at the low end (redeliveries after a crash or a nack arrive within
# seconds), then dense around common windows (1h, 6h, 12h, 24h, 7d) and just
# below them, so a duplicate arriving near the end of its window is visible as
# the top buckets filling up.
DUPLICATE_AGE_BUCKETS: Sequence[float] = (
    0.1, 1, 5, 30, 60, 300, 900, 1800, 2700, 3300, 3600,
    7200, 14400, 18000, 21600, 32400, 39600, 43200,
    64800, 75600, 82800, 86400, 172800, 345600, 518400, 604800,
)  # fmt: skip
RPC_DURATION_BUCKETS: Sequence[float] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)  # fmt: skip


class PolicySource(Protocol):
    def current(self) -> PolicySet: ...


class DedupHistograms:
    """The two histograms, aggregated in the sidecar (histograms.py, ADR 0076)."""

    def __init__(self) -> None:
        self.duplicate_age = Histogram(
            "dedup_duplicate_age",
            "s",
            "Age of the original when a duplicate arrived",
            DUPLICATE_AGE_BUCKETS,
            ("namespace",),
        )
        self.rpc_duration = Histogram(
            "dedup_rpc_duration",
            "s",
            "Latency at the server of each unary RPC and each Stream message",
            RPC_DURATION_BUCKETS,
            ("method", "operation", "code"),
        )
        self.all = (self.duplicate_age, self.rpc_duration)


Callback = Callable[[CallbackOptions], Iterable[Observation]]


def _counted(counts: Counter[tuple[str, ...]], labels: tuple[str, ...]) -> Callback:
    """An observable counter's callback: each label-value tuple's count so far."""

    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        for key, count in list(counts.items()):
            yield Observation(count, dict(zip(labels, key, strict=True)))

    return observe


class DedupMetrics:
    """Counts are kept in plain dictionaries and read by observable counters when a reader collects;
    the histograms are aggregated in `DedupHistograms`. Counting a decision or timing an RPC makes
    no OpenTelemetry SDK call (ADR 0076)."""

    def __init__(
        self,
        meter: Meter,
        histograms: DedupHistograms | None = None,
        policies: PolicySource | None = None,
        waiters: ClaimWaiters | None = None,
    ) -> None:
        # (namespace, operation, outcome), (namespace, operation), (operation, kind), (namespace, operation)
        self.decisions: Counter[tuple[str, ...]] = Counter()
        self.degraded: Counter[tuple[str, ...]] = Counter()
        self.store_errors: Counter[tuple[str, ...]] = Counter()
        self.lease_lost: Counter[tuple[str, ...]] = Counter()
        self.histograms = histograms or DedupHistograms()
        for name, counts, labels, description in (
            ("dedup_decisions", self.decisions, ("namespace", "operation", "outcome"), "Decisions made by the store"),
            (
                "dedup_degraded",
                self.degraded,
                ("namespace", "operation"),
                "Answers given without the store (on_store_error: allow)",
            ),
            ("dedup_store_errors", self.store_errors, ("operation", "kind"), "Failed store calls by kind"),
            ("dedup_lease_lost", self.lease_lost, ("namespace", "operation"), "Commit/release/renew by a stale holder"),
        ):
            meter.create_observable_counter(name, [_counted(counts, labels)], description=description)
        self._policies = policies
        self._waiters = waiters
        if waiters is not None:
            meter.create_observable_gauge(
                "dedup_claim_waiters", [self._waiting], description="Claims waiting for an in-progress holder"
            )
            meter.create_observable_counter(
                "dedup_claim_wait", [self._wait_ends], description="Claim waits by how they ended"
            )
        if policies is not None:
            meter.create_observable_gauge(
                "dedup_window", [self._windows], unit="s", description="Default window of each namespace policy"
            )

    def rpc_duration(self, seconds: float, method: str, operation: str, code: str) -> None:
        self.histograms.rpc_duration.record(seconds, (method, operation, code))

    def _waiting(self, _options: CallbackOptions) -> Iterable[Observation]:
        assert self._waiters is not None
        yield Observation(len(self._waiters))

    def _wait_ends(self, _options: CallbackOptions) -> Iterable[Observation]:
        assert self._waiters is not None
        for (namespace, end), count in list(self._waiters.ended.items()):
            yield Observation(count, {"namespace": namespace, "ended": end.value})

    def _windows(self, _options: CallbackOptions) -> Iterable[Observation]:
        assert self._policies is not None
        policies = self._policies.current()
        if policies.default is not None:
            yield Observation(policies.default.window_ms / 1000, {"namespace": "default"})
        for name, policy in policies.namespaces.items():
            yield Observation(policy.window_ms / 1000, {"namespace": name})


class MetricsObserver:
    def __init__(self, metrics: DedupMetrics) -> None:
        self._decisions = metrics.decisions
        self._degraded = metrics.degraded
        self._store_errors = metrics.store_errors
        self._lease_lost = metrics.lease_lost
        self._duplicate_age = metrics.histograms.duplicate_age

    def decided(
        self,
        operation: str,
        namespace: str,
        decision: Decision | Inspection | ForgetOutcome,
        record_id: bytes = b"",
        trace_ids: TraceIds = TraceIds.OMIT,
    ) -> None:
        if outcomes.is_degraded(decision):
            self._degraded[namespace, operation] += 1
            return
        outcome = outcomes.decided(decision)
        self._decisions[namespace, operation, outcome] += 1
        if outcome == "DUPLICATE":
            self._duplicate_age.record(getattr(decision, "age_ms", 0) / 1000, (namespace,))
        elif outcome == "LEASE_LOST":
            self._lease_lost[namespace, operation] += 1

    def store_failed(self, operation: str, namespace: str, error: StoreError, degraded: bool) -> None:
        self._store_errors[operation, error.kind] += 1
