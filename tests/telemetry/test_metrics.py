"""/metrics end to end: a scripted sequence against a real sidecar, then exact counter values."""

from __future__ import annotations

import re
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from tests.support.redis_server import RedisProcess, free_port
from tests.support.sidecar_process import SidecarProcess
from tests.telemetry.scripted import (
    EXPECTED_CALLS,
    EXPECTED_DECISIONS,
    EXPECTED_DUPLICATE_AGES,
    EXPECTED_LEASE_LOST,
    EXPECTED_WINDOWS,
    POLICIES,
    labels,
    scripted_sequence,
)

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dedup-sidecar.json"


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape_until(url: str, ready: Callable[[Samples], bool], timeout_s: float = 15.0) -> Samples:
    """Scrapes until `ready` (bounded); the last scrape either way, for the assertions to show.

    An aborted call's status reaches the caller before the server's handler has unwound to the
    wrapper that records its duration, so a scrape right after the caller's error can miss it."""
    deadline = time.monotonic() + timeout_s
    samples = scrape(url)
    while not ready(samples) and time.monotonic() < deadline:
        time.sleep(0.02)
        samples = scrape(url)
    return samples


def values(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (sample, labels), value in samples.items() if sample == name}


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
    await scripted_sequence(stub)

    samples = scrape(metrics_url(sidecar_with_metrics))
    assert values(samples, "dedup_decisions_total") == EXPECTED_DECISIONS
    assert values(samples, "dedup_lease_lost_total") == EXPECTED_LEASE_LOST
    assert values(samples, "dedup_duplicate_age_seconds_count") == EXPECTED_DUPLICATE_AGES
    assert values(samples, "dedup_window_seconds") == EXPECTED_WINDOWS
    assert values(samples, "dedup_rpc_duration_seconds_count") == EXPECTED_CALLS
    assert values(samples, "dedup_degraded_total") == {}
    assert values(samples, "dedup_store_errors_total") == {}

    # The Grafana dashboard queries only what the sidecar exports (zero counters are absent here).
    exported = {name for name, _ in samples} | {"dedup_degraded_total", "dedup_store_errors_total"}
    assert set(re.findall(r"dedup_[a-z_]+", DASHBOARD.read_text())) <= exported
    # le is "64800" from this exporter and "64800.0" once Prometheus 3 normalises it: the dashboard matches both.
    for bucket in re.findall(r'le=~\\"([0-9]+)\(', DASHBOARD.read_text()):
        assert ("dedup_duplicate_age_seconds_bucket", labels(namespace="orders", le=bucket)) in samples


async def test_stream_messages_are_timed_one_by_one_by_operation(
    sidecar_with_metrics: SidecarProcess, stub: dedup_pb2_grpc.DedupStub
) -> None:
    claim = await stub.Claim(pb.ClaimRequest(namespace="orders", id=b"held"))
    messages = [
        pb.StreamRequest(correlation_id=1, check=pb.CheckRequest(namespace="orders", id=b"s1")),
        pb.StreamRequest(correlation_id=2, check=pb.CheckRequest(namespace="orders", id=b"s2")),
        pb.StreamRequest(
            correlation_id=3, commit=pb.CommitRequest(namespace="orders", id=b"held", fencing_token=claim.fencing_token)
        ),
        pb.StreamRequest(
            correlation_id=4,
            check_batch=pb.CheckBatchRequest(items=[pb.CheckRequest(namespace="orders", id=i) for i in (b"s1", b"s3")]),
        ),
        pb.StreamRequest(correlation_id=5, claim=pb.ClaimRequest(namespace="orders", id=b"")),  # no id: invalid
        pb.StreamRequest(correlation_id=6),  # no operation: invalid
    ]
    responses = {r.correlation_id: r async for r in stub.Stream(iter(messages))}
    assert sorted(responses) == [1, 2, 3, 4, 5, 6]
    assert [responses[n].WhichOneof("response") for n in (5, 6)] == ["error", "error"]

    samples = scrape(metrics_url(sidecar_with_metrics))
    durations = values(samples, "dedup_rpc_duration_seconds_count")
    stream = {key: count for key, count in durations.items() if ("method", "Stream") in key}
    assert stream == {
        labels(method="Stream", operation="check", code="OK"): 2,
        labels(method="Stream", operation="commit", code="OK"): 1,
        labels(method="Stream", operation="check_batch", code="OK"): 1,
        labels(method="Stream", operation="claim", code="INVALID_ARGUMENT"): 1,
        labels(method="Stream", operation="unset", code="INVALID_ARGUMENT"): 1,
    }
    sums = values(samples, "dedup_rpc_duration_seconds_sum")
    assert all(sums[key] > 0 for key in stream)
    assert durations[labels(method="Claim", operation="claim", code="OK")] == 1
    # Stream messages are counted as decisions like unary calls.
    assert values(samples, "dedup_decisions_total")[labels(namespace="orders", operation="check", outcome="NEW")] == 3


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
        samples = scrape_until(
            metrics_url(process), lambda s: sum(values(s, "dedup_rpc_duration_seconds_count").values()) >= 2
        )
        assert values(samples, "dedup_degraded_total") == {labels(namespace="lenient", operation="check"): 1}
        assert values(samples, "dedup_store_errors_total") == {labels(operation="check", kind="connection"): 2}
        assert values(samples, "dedup_decisions_total") == {}
        durations = values(samples, "dedup_rpc_duration_seconds_count")
        assert durations == {
            labels(method="Check", operation="check", code="OK"): 1,
            labels(method="Check", operation="check", code="UNAVAILABLE"): 1,
        }
        degraded = process.wait_log(lambda e: str(e.get("msg", "")).startswith("degraded answer"))
        assert degraded["namespace"] == "lenient"
        assert "id_hash" in degraded
        process.wait_log(lambda e: e.get("msg") == "store error" and e.get("namespace") == "orders")
        assert not any("secret-id" in line for line in process.raw_lines)
    finally:
        process.stop()
