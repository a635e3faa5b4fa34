"""/metrics end to end: a scripted sequence against a real sidecar, then exact counter values."""

from __future__ import annotations

import re
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from tests.support.redis_server import RedisProcess, free_port
from tests.support.sidecar_process import SidecarProcess

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dedup-sidecar.json"

POLICIES = """
namespaces:
  default: {window: 1h}
  orders: {window: 2h}
  trial: {shadow: true}
  lenient: {on_store_error: allow}
"""

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def values(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (sample, labels), value in samples.items() if sample == name}


def labels(**kv: str) -> frozenset[tuple[str, str]]:
    return frozenset(kv.items())


def start(tmp_path: Path, *args: str) -> SidecarProcess:
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICIES)
    return SidecarProcess(["--policies", str(policies), "--metrics-listen", "127.0.0.1:0", *args]).start()


def metrics_url(process: SidecarProcess) -> str:
    return str(process.wait_log(lambda e: e.get("msg") == "telemetry")["metrics_url"])


@pytest.fixture
def sidecar_with_metrics(redis_server: RedisProcess, tmp_path: Path) -> Iterator[SidecarProcess]:
    process = start(tmp_path, "--redis-url", redis_server.url, "--key-prefix", f"tm-{uuid.uuid4().hex}:")
    yield process
    process.stop()


@pytest.fixture
async def stub(sidecar_with_metrics: SidecarProcess) -> AsyncIterator[dedup_pb2_grpc.DedupStub]:
    async with grpc.aio.insecure_channel(sidecar_with_metrics.target) as channel:
        yield dedup_pb2_grpc.DedupStub(channel)


async def test_counters_after_a_scripted_sequence(
    sidecar_with_metrics: SidecarProcess, stub: dedup_pb2_grpc.DedupStub
) -> None:
    await stub.Check(pb.CheckRequest(namespace="orders", id=b"a"))  # NEW
    await stub.Check(pb.CheckRequest(namespace="orders", id=b"a"))  # DUPLICATE
    claim = await stub.Claim(pb.ClaimRequest(namespace="orders", id=b"b"))  # ACQUIRED
    await stub.Claim(pb.ClaimRequest(namespace="orders", id=b"b"))  # IN_PROGRESS
    await stub.Commit(pb.CommitRequest(namespace="orders", id=b"b", fencing_token=claim.fencing_token))  # COMMITTED
    await stub.Commit(pb.CommitRequest(namespace="orders", id=b"b", fencing_token=1))  # LEASE_LOST
    await stub.Claim(pb.ClaimRequest(namespace="orders", id=b"b"))  # DUPLICATE
    await stub.Check(pb.CheckRequest(namespace="orders", id=b"b"))  # DUPLICATE
    # Namespaces without a policy of their own are counted as "default", never by their raw name.
    for name in ("anything", "something.else", "anything"):
        await stub.Check(pb.CheckRequest(namespace=name, id=b"x"))  # NEW, NEW, DUPLICATE
    # Shadow: answered NEW, counted as what the store decided.
    await stub.Check(pb.CheckRequest(namespace="trial", id=b"s"))
    shadowed = await stub.Check(pb.CheckRequest(namespace="trial", id=b"s"))
    assert shadowed.outcome == pb.CHECK_OUTCOME_NEW
    await stub.CheckBatch(pb.CheckBatchRequest(items=[pb.CheckRequest(namespace="orders", id=i) for i in (b"a", b"c")]))

    samples = scrape(metrics_url(sidecar_with_metrics))
    assert values(samples, "dedup_decisions_total") == {
        labels(namespace="orders", operation="check", outcome="NEW"): 2,
        labels(namespace="orders", operation="check", outcome="DUPLICATE"): 3,
        labels(namespace="orders", operation="claim", outcome="ACQUIRED"): 1,
        labels(namespace="orders", operation="claim", outcome="IN_PROGRESS"): 1,
        labels(namespace="orders", operation="claim", outcome="DUPLICATE"): 1,
        labels(namespace="orders", operation="commit", outcome="COMMITTED"): 1,
        labels(namespace="orders", operation="commit", outcome="LEASE_LOST"): 1,
        labels(namespace="default", operation="check", outcome="NEW"): 2,
        labels(namespace="default", operation="check", outcome="DUPLICATE"): 1,
        labels(namespace="trial", operation="check", outcome="NEW"): 1,
        labels(namespace="trial", operation="check", outcome="DUPLICATE"): 1,
    }
    assert values(samples, "dedup_lease_lost_total") == {labels(namespace="orders", operation="commit"): 1}
    assert values(samples, "dedup_duplicate_age_seconds_count") == {
        labels(namespace="orders"): 4,
        labels(namespace="default"): 1,
        labels(namespace="trial"): 1,
    }
    assert values(samples, "dedup_window_seconds") == {
        labels(namespace="default"): 3600,
        labels(namespace="orders"): 7200,
        labels(namespace="trial"): 86400,
        labels(namespace="lenient"): 86400,
    }
    durations = values(samples, "dedup_rpc_duration_seconds_count")
    assert durations[labels(method="Check", code="OK")] == 8
    assert durations[labels(method="CheckBatch", code="OK")] == 1
    assert values(samples, "dedup_degraded_total") == {}
    assert values(samples, "dedup_store_errors_total") == {}

    # The Grafana dashboard queries only what the sidecar exports (zero counters are absent here).
    exported = {name for name, _ in samples} | {"dedup_degraded_total", "dedup_store_errors_total"}
    assert set(re.findall(r"dedup_[a-z_]+", DASHBOARD.read_text())) <= exported
    # le is "64800" from this exporter and "64800.0" once Prometheus 3 normalises it: the dashboard matches both.
    for bucket in re.findall(r'le=~\\"([0-9]+)\(', DASHBOARD.read_text()):
        assert ("dedup_duplicate_age_seconds_bucket", labels(namespace="orders", le=bucket)) in samples


async def test_store_errors_and_degraded_answers_are_counted_and_logged(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}"  # nothing listens there
    process = start(tmp_path, "--redis-url", dead)
    try:
        async with grpc.aio.insecure_channel(process.target) as channel:
            stub = dedup_pb2_grpc.DedupStub(channel)
            answer = await stub.Check(pb.CheckRequest(namespace="lenient", id=b"secret-id-1"))
            assert answer.outcome == pb.CHECK_OUTCOME_NEW
            assert answer.degraded
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.Check(pb.CheckRequest(namespace="orders", id=b"secret-id-2"))
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        samples = scrape(metrics_url(process))
        assert values(samples, "dedup_degraded_total") == {labels(namespace="lenient", operation="check"): 1}
        assert values(samples, "dedup_store_errors_total") == {labels(operation="check", kind="connection"): 2}
        assert values(samples, "dedup_decisions_total") == {}
        durations = values(samples, "dedup_rpc_duration_seconds_count")
        assert durations == {labels(method="Check", code="OK"): 1, labels(method="Check", code="UNAVAILABLE"): 1}
        degraded = process.wait_log(lambda e: str(e.get("msg", "")).startswith("degraded answer"))
        assert degraded["namespace"] == "lenient"
        assert "id_hash" in degraded
        process.wait_log(lambda e: e.get("msg") == "store error" and e.get("namespace") == "orders")
        assert not any("secret-id" in line for line in process.raw_lines)
    finally:
        process.stop()
