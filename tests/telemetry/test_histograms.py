"""The sidecar's own histogram aggregation (ADR 0076) gives the points the SDK's histogram gives, and
reaches a reader's collection under the sidecar's scope."""

from __future__ import annotations

import random

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from sidecar.telemetry.histograms import Histogram, HistogramReaders
from sidecar.telemetry.metrics import DUPLICATE_AGE_BUCKETS, RPC_DURATION_BUCKETS, DedupHistograms

SCOPE = InstrumentationScope("sidecar", "test")


def points(data: MetricsData, name: str) -> dict[frozenset[tuple[str, object]], HistogramDataPoint]:
    found = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        assert isinstance(point, HistogramDataPoint)
                        found[frozenset(point.attributes.items())] = point  # type: ignore[union-attr]
    return found


def test_the_points_are_the_sdks() -> None:
    reader = InMemoryMetricReader()
    sdk = (
        MeterProvider([reader])
        .get_meter("sdk")
        .create_histogram("h", unit="s", explicit_bucket_boundaries_advisory=DUPLICATE_AGE_BUCKETS)
    )
    ours = Histogram("h", "s", "", DUPLICATE_AGE_BUCKETS, ("namespace",))
    rng = random.Random(5)
    values = [*DUPLICATE_AGE_BUCKETS, 0.0, 10**7]  # every bound exactly (upper bounds are inclusive), and beyond
    values += [rng.uniform(0, 700_000) for _ in range(2_000)] + [rng.uniform(0, 2) for _ in range(500)]
    for n, value in enumerate(values):
        namespace = ("orders", "payments")[n % 2]
        sdk.record(value, {"namespace": namespace})
        ours.record(value, (namespace,))

    collected = reader.get_metrics_data()
    assert collected is not None
    expected = points(collected, "h")
    merged = HistogramReaders([ours], SCOPE, Resource.create({})).merged(MetricsData([]))
    got = points(merged, "h")
    assert set(got) == set(expected) == {frozenset({("namespace", "orders")}), frozenset({("namespace", "payments")})}
    for labels, point in got.items():
        want = expected[labels]
        assert list(point.bucket_counts) == list(want.bucket_counts)
        assert list(point.explicit_bounds) == list(want.explicit_bounds)
        assert point.count == want.count
        assert point.sum == want.sum
        assert (point.min, point.max) == (want.min, want.max)


def test_the_histograms_join_the_sidecars_scope_in_a_collection() -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider([reader]).get_meter("sidecar", "test")
    meter.create_counter("dedup_decisions").add(1, {"namespace": "default"})
    histograms = DedupHistograms()
    merge = HistogramReaders(histograms.all, SCOPE, Resource.create({})).merged
    collected = reader.get_metrics_data()
    assert collected is not None
    assert merge(collected) == collected  # nothing recorded yet: nothing added

    histograms.rpc_duration.record(0.0003, ("Check", "check", "OK"))
    histograms.rpc_duration.record(0.0001, ("Check", "check", "OK"))  # on the first bound
    merged = merge(collected)
    [resource] = merged.resource_metrics
    [scope] = resource.scope_metrics
    assert scope.scope.name == "sidecar"
    assert [m.name for m in scope.metrics] == ["dedup_decisions", "dedup_rpc_duration"]
    [point] = points(merged, "dedup_rpc_duration").values()
    assert point.attributes == {"method": "Check", "operation": "check", "code": "OK"}
    assert point.count == 2
    assert list(point.bucket_counts)[:3] == [1, 0, 1]
    assert list(point.explicit_bounds) == list(RPC_DURATION_BUCKETS)
