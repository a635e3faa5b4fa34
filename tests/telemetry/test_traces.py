"""Traces end to end: a real sidecar process exports over OTLP/gRPC to an in-test receiver."""

from __future__ import annotations

import asyncio
import http.server
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import ClassVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from sidecar.domain.keys import id_digest
from tests.support.otlp_receiver import OtlpReceiver, attributes
from tests.support.redis_server import RedisProcess
from tests.support.sidecar_process import SidecarProcess

POLICIES = """
namespaces:
  default: {window: 1h}
  ids.hash: {trace_ids: hash}
  ids.raw: {trace_ids: raw}
  ids.omit: {trace_ids: omit}
"""

CLIENT = TracerProvider().get_tracer("test-client")


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def traced_sidecar(
    redis_server: RedisProcess, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SidecarProcess]:
    policies = tmp_path_factory.mktemp("policies") / "policies.yaml"
    policies.write_text(POLICIES)
    args = ["--redis-url", redis_server.url, "--policies", str(policies), "--key-prefix", f"tt-{uuid.uuid4().hex}:"]
    env = {**receiver.exported_env(), "K8S_POD_NAME": "dedup-0", "K8S_NAMESPACE_NAME": "team-a"}
    process = SidecarProcess(args, env=env).start()
    yield process
    process.stop()


@pytest.fixture
async def stub(traced_sidecar: SidecarProcess) -> AsyncIterator[dedup_pb2_grpc.DedupStub]:
    async with grpc.aio.insecure_channel(traced_sidecar.target) as channel:
        yield dedup_pb2_grpc.DedupStub(channel)


def client_span(name: str = "consume") -> trace.Span:
    return CLIENT.start_span(name)


def metadata(span: trace.Span) -> tuple[tuple[str, str], ...]:
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
    return tuple(carrier.items())


def server_span_of(receiver: OtlpReceiver, parent: trace.Span) -> Span:
    context = parent.get_span_context()
    return receiver.wait_span(
        lambda s: s.kind == Span.SPAN_KIND_SERVER and s.parent_span_id == context.span_id.to_bytes(8, "big")
    )


def new_id() -> bytes:
    return f"msg-{uuid.uuid4().hex}".encode()


async def test_server_span_is_a_child_of_the_client_span_with_dedup_attributes(
    stub: dedup_pb2_grpc.DedupStub, receiver: OtlpReceiver
) -> None:
    parent, record_id = client_span(), new_id()
    reply = await stub.Claim(pb.ClaimRequest(namespace="ids.hash", id=record_id), metadata=metadata(parent))

    span = server_span_of(receiver, parent)
    assert span.trace_id == parent.get_span_context().trace_id.to_bytes(16, "big")
    assert span.name == "dedup.v1.Dedup/Claim"
    attrs = attributes(span)
    assert attrs["rpc.system"] == "grpc"
    assert attrs["rpc.service"] == "dedup.v1.Dedup"
    assert attrs["rpc.method"] == "Claim"
    assert attrs["rpc.grpc.status_code"] == 0
    assert attrs["dedup.namespace"] == "ids.hash"
    assert attrs["dedup.operation"] == "claim"
    assert attrs["dedup.outcome"] == "ACQUIRED"
    assert attrs["dedup.fencing_token"] == reply.fencing_token
    assert attrs["dedup.degraded"] is False
    assert attrs["dedup.id_hash"] == id_digest(record_id)
    assert "dedup.id" not in attrs

    redis = receiver.wait_span(lambda s: s.parent_span_id == span.span_id)
    assert redis.name == "EVALSHA claim"
    assert redis.kind == Span.SPAN_KIND_CLIENT
    assert attributes(redis)["db.system"] == "redis"
    resource = receiver.resources[-1]
    assert resource["service.name"] == "dedup-sidecar"
    assert resource["k8s.pod.name"] == "dedup-0"
    assert resource["k8s.namespace.name"] == "team-a"


async def test_a_failed_call_carries_its_status_and_the_peer(
    stub: dedup_pb2_grpc.DedupStub, receiver: OtlpReceiver
) -> None:
    """Status per the RPC conventions: a caller's mistake (INVALID_ARGUMENT) is not a server error."""
    parent = client_span()
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await stub.Check(pb.CheckRequest(namespace="default", id=b""), metadata=metadata(parent))
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    span = server_span_of(receiver, parent)
    attrs = attributes(span)
    assert attrs["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert span.status.code != span.status.STATUS_CODE_ERROR
    assert attrs["net.peer.ip"] == "127.0.0.1"
    assert attrs["net.peer.name"] == "localhost"
    assert "grpc-python" in str(attrs["rpc.user_agent"])


async def test_duplicate_and_in_progress_spans_link_to_the_original(
    stub: dedup_pb2_grpc.DedupStub, receiver: OtlpReceiver
) -> None:
    record_id = new_id()
    first, waiting, committer, late, checker = (client_span(n) for n in ("first", "wait", "commit", "late", "check"))
    ns = "ids.hash"
    claimed = await stub.Claim(pb.ClaimRequest(namespace=ns, id=record_id), metadata=metadata(first))
    busy = await stub.Claim(pb.ClaimRequest(namespace=ns, id=record_id), metadata=metadata(waiting))
    await stub.Commit(
        pb.CommitRequest(namespace=ns, id=record_id, fencing_token=claimed.fencing_token), metadata=metadata(committer)
    )
    dup = await stub.Claim(pb.ClaimRequest(namespace=ns, id=record_id), metadata=metadata(late))
    check = await stub.Check(pb.CheckRequest(namespace=ns, id=record_id), metadata=metadata(checker))
    assert busy.outcome == pb.CLAIM_OUTCOME_IN_PROGRESS
    assert dup.outcome == pb.CLAIM_OUTCOME_DUPLICATE
    assert check.outcome == pb.CHECK_OUTCOME_DUPLICATE

    original = server_span_of(receiver, first)
    commit = server_span_of(receiver, committer)

    def links(span: Span) -> list[tuple[bytes, bytes]]:
        return [(link.trace_id, link.span_id) for link in span.links]

    # IN_PROGRESS and Check's DUPLICATE point at the first sighting; Claim's DUPLICATE at the commit.
    assert links(server_span_of(receiver, waiting)) == [(original.trace_id, original.span_id)]
    assert links(server_span_of(receiver, checker)) == [(original.trace_id, original.span_id)]
    late_span = server_span_of(receiver, late)
    assert links(late_span) == [(commit.trace_id, commit.span_id)]
    assert attributes(late_span.links[0])["dedup.link"] == "original"
    assert attributes(late_span)["dedup.duplicate_age_ms"] >= 0
    assert links(original) == []


async def test_commit_release_and_renew_spans_carry_the_requests_fencing_token(
    stub: dedup_pb2_grpc.DedupStub, receiver: OtlpReceiver
) -> None:
    ns, kept, released = "ids.hash", new_id(), new_id()
    claims = [await stub.Claim(pb.ClaimRequest(namespace=ns, id=i)) for i in (kept, released)]
    token, other = (claim.fencing_token for claim in claims)
    renewing, committing, releasing, stale = (client_span(n) for n in ("renew", "commit", "release", "stale"))
    renewed = await stub.Renew(pb.RenewRequest(namespace=ns, id=kept, fencing_token=token), metadata=metadata(renewing))
    committed = await stub.Commit(
        pb.CommitRequest(namespace=ns, id=kept, fencing_token=token), metadata=metadata(committing)
    )
    freed = await stub.Release(
        pb.ReleaseRequest(namespace=ns, id=released, fencing_token=other), metadata=metadata(releasing)
    )
    lost = await stub.Commit(
        pb.CommitRequest(namespace=ns, id=kept, fencing_token=token + 1000), metadata=metadata(stale)
    )
    assert renewed.outcome == pb.RENEW_OUTCOME_RENEWED
    assert committed.outcome == pb.COMMIT_OUTCOME_COMMITTED
    assert freed.outcome == pb.RELEASE_OUTCOME_RELEASED
    assert lost.outcome == pb.COMMIT_OUTCOME_LEASE_LOST
    expected = [
        (renewing, "renew", "RENEWED", token),
        (committing, "commit", "COMMITTED", token),
        (releasing, "release", "RELEASED", other),
        (stale, "commit", "LEASE_LOST", token + 1000),  # the token presented, even when it lost
    ]
    for parent, operation, outcome, presented in expected:
        attrs = attributes(server_span_of(receiver, parent))
        assert (attrs["dedup.operation"], attrs["dedup.outcome"]) == (operation, outcome)
        assert attrs["dedup.fencing_token"] == presented


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [("ids.hash", "dedup.id_hash"), ("ids.raw", "dedup.id"), ("ids.omit", None), ("unknown.ns", "dedup.id_hash")],
)
async def test_the_id_appears_only_as_the_namespace_allows(
    stub: dedup_pb2_grpc.DedupStub, receiver: OtlpReceiver, namespace: str, expected: str | None
) -> None:
    parent, record_id = client_span(), new_id()
    await stub.Check(pb.CheckRequest(namespace=namespace, id=record_id), metadata=metadata(parent))
    attrs = attributes(server_span_of(receiver, parent))
    shown = {key: value for key, value in attrs.items() if key in ("dedup.id", "dedup.id_hash")}
    if expected is None:
        assert shown == {}
    elif expected == "dedup.id":
        assert shown == {"dedup.id": record_id.decode()}
    else:
        assert shown == {"dedup.id_hash": id_digest(record_id)}
    if expected != "dedup.id":  # not anywhere in what was exported, in any form
        assert not any(record_id in raw for raw in receiver.raw_requests)


async def test_a_batch_is_one_span_with_per_outcome_counts(
    stub: dedup_pb2_grpc.DedupStub, receiver: OtlpReceiver
) -> None:
    parent, seen, fresh = client_span(), new_id(), new_id()
    await stub.Check(pb.CheckRequest(namespace="ids.raw", id=seen))
    items = [pb.CheckRequest(namespace="ids.raw", id=i) for i in (seen, fresh, new_id())]
    await stub.CheckBatch(pb.CheckBatchRequest(items=items), metadata=metadata(parent))
    span = server_span_of(receiver, parent)
    attrs = attributes(span)
    assert span.name == "dedup.v1.Dedup/CheckBatch"
    assert attrs["dedup.count.check.new"] == 2
    assert attrs["dedup.count.check.duplicate"] == 1
    assert attrs["dedup.items"] == 3
    assert attrs["dedup.namespace"] == "ids.raw"
    assert "dedup.id" not in attrs  # no per-item attributes, even where raw ids are allowed
    assert len(span.links) == 1


async def test_health_checks_are_not_traced(
    traced_sidecar: SidecarProcess, stub: dedup_pb2_grpc.DedupStub, receiver: OtlpReceiver
) -> None:
    async with grpc.aio.insecure_channel(traced_sidecar.target) as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
    parent = client_span()
    await stub.Check(pb.CheckRequest(namespace="ids.hash", id=new_id()), metadata=metadata(parent))
    server_span_of(receiver, parent)  # exported after the health check would have been
    assert not [s.name for s in receiver.spans if "Health" in s.name]


async def test_log_lines_carry_the_trace_id_and_never_a_hidden_raw_id(
    traced_sidecar: SidecarProcess, stub: dedup_pb2_grpc.DedupStub
) -> None:
    parent, record_id = client_span(), new_id()
    reply = await stub.Commit(
        pb.CommitRequest(namespace="ids.hash", id=record_id, fencing_token=42), metadata=metadata(parent)
    )
    assert reply.outcome == pb.COMMIT_OUTCOME_LEASE_LOST
    context = parent.get_span_context()
    line = traced_sidecar.wait_log(
        lambda e: e.get("msg", "").startswith("lease lost") and e.get("id_hash") == id_digest(record_id)
    )
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] != f"{context.span_id:016x}"  # the sidecar's own span, child of the client's
    assert line["namespace"] == "ids.hash"
    assert not any(record_id.decode() in raw for raw in traced_sidecar.raw_lines)


def test_startup_report_names_the_exporters(traced_sidecar: SidecarProcess) -> None:
    line = traced_sidecar.wait_log(lambda e: e.get("msg") == "telemetry")
    assert line["traces"] == "otlp"
    assert line["metrics"] == "none"


async def test_a_stream_is_one_span_with_per_outcome_counts(
    stub: dedup_pb2_grpc.DedupStub, receiver: OtlpReceiver
) -> None:
    parent, seen = client_span(), new_id()
    messages = [
        pb.StreamRequest(correlation_id=n, check=pb.CheckRequest(namespace="ids.hash", id=record_id))
        for n, record_id in enumerate((seen, seen, new_id()))
    ]
    call = stub.Stream(iter(messages), metadata=metadata(parent))
    responses = [response async for response in call]
    assert len(responses) == 3
    span = server_span_of(receiver, parent)
    attrs = attributes(span)
    assert span.name == "dedup.v1.Dedup/Stream"
    assert attrs["dedup.count.check.new"] + attrs.get("dedup.count.check.duplicate", 0) == 3
    assert attrs["dedup.items"] == 3
    assert "dedup.id_hash" not in attrs


class _HttpTraces(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[ExportTraceServiceRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            self.received.append(ExportTraceServiceRequest.FromString(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()
        self.wfile.write(ExportTraceServiceResponse().SerializeToString())

    def log_message(self, format: str, *args: object) -> None:
        pass


async def test_otlp_over_http(redis_server: RedisProcess) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HttpTraces)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    process = SidecarProcess(["--redis-url", redis_server.url, "--key-prefix", f"th-{uuid.uuid4().hex}:"], env=env)
    process.start()
    try:
        parent = client_span()
        async with grpc.aio.insecure_channel(process.target) as channel:
            await dedup_pb2_grpc.DedupStub(channel).Check(
                pb.CheckRequest(namespace="h", id=b"1"), metadata=metadata(parent)
            )
        trace_id = parent.get_span_context().trace_id.to_bytes(16, "big")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            spans = [
                span
                for request in list(_HttpTraces.received)
                for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
                if span.trace_id == trace_id
            ]
            if any(span.name == "dedup.v1.Dedup/Check" for span in spans):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("no span arrived over OTLP/HTTP")
    finally:
        process.stop()
        server.shutdown()
