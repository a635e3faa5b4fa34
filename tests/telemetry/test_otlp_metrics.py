"""OTLP metrics end to end: a real sidecar pushes to an in-test OTLP receiver (gRPC and HTTP)."""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_CUMULATIVE, Metric

from dedup.v1 import dedup_pb2_grpc
from tests.support.otlp_receiver import OtlpHttpMetricsReceiver, OtlpReceiver, point_values
from tests.support.redis_server import RedisProcess
from tests.support.sidecar_process import SidecarProcess
from tests.telemetry.scripted import (
    EXPECTED_CALLS,
    EXPECTED_DECISIONS,
    EXPECTED_DUPLICATE_AGES,
    EXPECTED_LEASE_LOST,
    EXPECTED_WINDOWS,
    POLICIES,
    scripted_sequence,
)

# docs/contract.md §7 names as OTLP carries them: Prometheus adds `_total` to counters and `_seconds` for unit "s".
EXPECTED_METRICS = {
    "dedup_decisions": ("sum", ""),
    "dedup_lease_lost": ("sum", ""),
    "dedup_duplicate_age": ("histogram", "s"),
    "dedup_window": ("gauge", "s"),
    "dedup_rpc_duration": ("histogram", "s"),
    "dedup_claim_waiters": ("gauge", ""),  # exported always; nobody waits in the sequence
}


def values(latest: dict[str, Metric], name: str) -> dict[frozenset[tuple[str, object]], float]:
    return point_values(latest[name]) if name in latest else {}


def done(latest: dict[str, Metric]) -> bool:
    """The export reflects the whole sequence (RPC durations are recorded after the reply is sent)."""
    return (
        values(latest, "dedup_decisions") == EXPECTED_DECISIONS
        and values(latest, "dedup_rpc_duration") == EXPECTED_CALLS
    )


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_otlp_metrics_after_a_scripted_sequence(
    redis_server: RedisProcess, tmp_path: Path, protocol: str
) -> None:
    receiver = OtlpReceiver().start() if protocol == "grpc" else OtlpHttpMetricsReceiver().start()
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICIES)
    env = {
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_METRIC_EXPORT_INTERVAL": "100",  # ms
    }
    args = ["--redis-url", redis_server.url, "--policies", str(policies), "--key-prefix", f"to-{uuid.uuid4().hex}:"]
    process = SidecarProcess(args, env=env).start()
    try:
        report = process.wait_log(lambda e: e.get("msg") == "telemetry")
        assert (report["metrics"], report["metrics_url"]) == ("otlp", "")
        async with grpc.aio.insecure_channel(process.target) as channel:
            await scripted_sequence(dedup_pb2_grpc.DedupStub(channel))

        latest = receiver.metrics.wait(done)
        assert values(latest, "dedup_decisions") == EXPECTED_DECISIONS
        assert values(latest, "dedup_lease_lost") == EXPECTED_LEASE_LOST
        assert values(latest, "dedup_duplicate_age") == EXPECTED_DUPLICATE_AGES
        assert values(latest, "dedup_window") == EXPECTED_WINDOWS
        assert values(latest, "dedup_rpc_duration") == EXPECTED_CALLS
        # Nothing degraded or failed: those counters have no points and are not exported.
        assert {name: (m.WhichOneof("data"), m.unit) for name, m in latest.items()} == EXPECTED_METRICS
        for counter in ("dedup_decisions", "dedup_lease_lost"):
            assert latest[counter].sum.is_monotonic
            assert latest[counter].sum.aggregation_temporality == AGGREGATION_TEMPORALITY_CUMULATIVE
        ages = latest["dedup_duplicate_age"].histogram.data_points[0]
        assert list(ages.explicit_bounds)[-4:] == [172800, 345600, 518400, 604800]
        assert receiver.metrics.resources[-1]["service.name"] == "dedup-sidecar"
    finally:
        process.stop()
        receiver.stop()
