"""Histograms aggregated in the sidecar, handed to the metric readers as SDK metric data (ADR 0076).

Recording a value is a dictionary lookup, a bisect and a few additions: no
OpenTelemetry SDK call per RPC (the SDK's `Histogram.record` hashes the
attributes, matches views and offers exemplars on every call). At collection
time `HistogramReaders` adds the points to what the SDK collected, as the
same `Metric`/`HistogramDataPoint` data the SDK would have produced (explicit
buckets, cumulative, with min and max), so the Prometheus and OTLP exporters
turn them into the same `dedup_*_seconds` series as before.

Values are recorded on the event loop's thread and read from a reader's
thread: a point's count is the sum of its buckets at reading time, so a
reader never sees a count that disagrees with the buckets.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Sequence

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    Metric,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope


class _Point:
    __slots__ = ("buckets", "max", "min", "start_ns", "sum")

    def __init__(self, buckets: int) -> None:
        self.buckets = [0] * buckets
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self.start_ns = time.time_ns()


class Histogram:
    """One histogram: explicit bucket bounds, one point per label-value tuple (in `labels` order)."""

    def __init__(
        self, name: str, unit: str, description: str, bounds: Sequence[float], labels: tuple[str, ...]
    ) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.bounds = tuple(bounds)  # as given: the exporters write `le` from them (64800, not 64800.0)
        self.labels = labels
        self._points: dict[tuple[str, ...], _Point] = {}

    def record(self, value: float, key: tuple[str, ...]) -> None:
        point = self._points.get(key)
        if point is None:
            point = self._points[key] = _Point(len(self.bounds) + 1)
        point.buckets[bisect_left(self.bounds, value)] += 1  # upper bounds inclusive, as the SDK's
        point.sum += value
        if value < point.min:
            point.min = value
        if value > point.max:
            point.max = value

    def metric(self, now_ns: int) -> Metric | None:
        """The points so far as SDK metric data (cumulative); None before the first value."""
        points = []
        for key, point in list(self._points.items()):
            buckets = list(point.buckets)
            points.append(
                HistogramDataPoint(
                    attributes=dict(zip(self.labels, key, strict=True)),
                    start_time_unix_nano=point.start_ns,
                    time_unix_nano=now_ns,
                    count=sum(buckets),
                    sum=point.sum,
                    bucket_counts=buckets,
                    explicit_bounds=self.bounds,
                    min=point.min,
                    max=point.max,
                )
            )
        if not points:
            return None
        data = HistogramData(data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE)
        return Metric(name=self.name, description=self.description, unit=self.unit, data=data)


class HistogramReaders:
    """Adds the histograms to each collection of the SDK, under the sidecar's instrumentation scope."""

    def __init__(self, histograms: Sequence[Histogram], scope: InstrumentationScope, resource: Resource) -> None:
        self._histograms = histograms
        self._scope = scope
        self._resource = resource

    def merged(self, collected: MetricsData) -> MetricsData:
        now = time.time_ns()
        extra = [m for m in (h.metric(now) for h in self._histograms) if m is not None]
        if not extra:
            return collected
        resources = list(collected.resource_metrics)
        if not resources:
            return MetricsData([ResourceMetrics(self._resource, [ScopeMetrics(self._scope, extra, "")], "")])
        first = resources[0]
        scopes = list(first.scope_metrics)
        for index, scope in enumerate(scopes):
            if scope.scope.name == self._scope.name:
                scopes[index] = ScopeMetrics(scope.scope, [*scope.metrics, *extra], scope.schema_url)
                break
        else:
            scopes.append(ScopeMetrics(self._scope, extra, ""))
        resources[0] = ResourceMetrics(first.resource, scopes, first.schema_url)
        return MetricsData(resources)


Merge = Callable[[MetricsData], MetricsData]
