"""Python client transport rules against a scripted gRPC server (not the sidecar):
which calls are retried on UNAVAILABLE, deadlines, trace-context propagation, error details."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from dedup_client import (
    AsyncDedupClient,
    DedupClient,
    InvalidArgumentError,
    RetryPolicy,
    UnavailableError,
)
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc


class Scripted(dedup_pb2_grpc.DedupServicer):
    """Fails the first `failures` calls of each method with UNAVAILABLE, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: dict[str, int] = {}
        self.metadata: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def _enter(self, method: str, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.calls[method] = self.calls.get(method, 0) + 1
            self.metadata.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
            failing = self.calls[method] <= self.failures
        if failing:
            context.abort(grpc.StatusCode.UNAVAILABLE, "store unreachable")

    def Check(self, request: pb.CheckRequest, context: grpc.ServicerContext) -> pb.CheckResponse:
        self._enter("Check", context)
        if request.namespace == "bad":
            status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="bad namespace")
            detail = any_pb2.Any()
            detail.Pack(error_details_pb2.BadRequest(field_violations=[{"field": "namespace", "description": "x"}]))
            status.details.append(detail)
            context.abort_with_status(rpc_status.to_status(status))
        return pb.CheckResponse(outcome=pb.CHECK_OUTCOME_NEW)

    def Claim(self, request: pb.ClaimRequest, context: grpc.ServicerContext) -> pb.ClaimResponse:
        self._enter("Claim", context)
        return pb.ClaimResponse(outcome=pb.CLAIM_OUTCOME_ACQUIRED, fencing_token=7)

    def Commit(self, request: pb.CommitRequest, context: grpc.ServicerContext) -> pb.CommitResponse:
        self._enter("Commit", context)
        return pb.CommitResponse(outcome=pb.COMMIT_OUTCOME_COMMITTED)

    def Forget(self, request: pb.ForgetRequest, context: grpc.ServicerContext) -> pb.ForgetResponse:
        self._enter("Forget", context)
        return pb.ForgetResponse(outcome=pb.FORGET_OUTCOME_FORGOTTEN)

    def CheckBatch(self, request: pb.CheckBatchRequest, context: grpc.ServicerContext) -> pb.CheckBatchResponse:
        self._enter("CheckBatch", context)
        return pb.CheckBatchResponse(results=[pb.CheckResponse(outcome=pb.CHECK_OUTCOME_NEW) for _ in request.items])


def serve(servicer: Scripted) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(4))
    dedup_pb2_grpc.add_DedupServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
def flaky() -> Iterator[tuple[Scripted, str]]:
    servicer = Scripted(failures=2)
    server, target = serve(servicer)
    yield servicer, target
    server.stop(None)


FAST = RetryPolicy(max_attempts=4, initial_backoff_s=0.001, max_backoff_s=0.005)


def test_claim_and_commit_are_retried_on_unavailable(flaky: tuple[Scripted, str]) -> None:
    servicer, target = flaky
    with DedupClient(target, retry=FAST) as client:
        assert client.claim("ns", "id").fencing_token == 7
        assert client.commit("ns", "id", 7).outcome is not None
    assert servicer.calls == {"Claim": 3, "Commit": 3}


def test_check_and_forget_are_never_retried(flaky: tuple[Scripted, str]) -> None:
    """A Check whose NEW was lost would answer DUPLICATE on a retry: the caller would drop the message."""
    servicer, target = flaky
    with DedupClient(target, retry=FAST) as client:
        for call in (lambda: client.check("ns", "id"), lambda: client.forget("ns", "id")):
            with pytest.raises(UnavailableError):
                call()
        with pytest.raises(UnavailableError):
            client.check_batch("ns", ["a", "b"])
    assert servicer.calls == {"Check": 1, "Forget": 1, "CheckBatch": 1}


def test_retries_stop_at_max_attempts() -> None:
    servicer = Scripted(failures=100)
    server, target = serve(servicer)
    try:
        with DedupClient(target, retry=FAST) as client, pytest.raises(UnavailableError):
            client.claim("ns", "id")
    finally:
        server.stop(None)
    assert servicer.calls == {"Claim": 4}


async def test_asyncio_client_follows_the_same_rules(flaky: tuple[Scripted, str]) -> None:
    servicer, target = flaky
    async with AsyncDedupClient(target, retry=FAST) as client:
        assert (await client.claim("ns", "id")).fencing_token == 7
        with pytest.raises(UnavailableError):
            await client.check("ns", "id")
    assert servicer.calls == {"Claim": 3, "Check": 1}


def test_invalid_argument_carries_field_violations() -> None:
    servicer = Scripted(failures=0)
    server, target = serve(servicer)
    try:
        with DedupClient(target) as client, pytest.raises(InvalidArgumentError) as caught:
            client.check("bad", "id")
    finally:
        server.stop(None)
    assert [v.field for v in caught.value.field_violations] == ["namespace"]


def test_trace_context_of_the_current_span_is_propagated() -> None:
    servicer = Scripted(failures=0)
    server, target = serve(servicer)
    tracer = TracerProvider().get_tracer("test")
    try:
        with DedupClient(target) as client, tracer.start_as_current_span("consume") as span:
            client.check("ns", "id")
            trace_id = format(span.get_span_context().trace_id, "032x")
            span_id = format(span.get_span_context().span_id, "016x")
    finally:
        server.stop(None)
    traceparent = servicer.metadata[-1].get("traceparent", "")
    assert traceparent.split("-")[1:3] == [trace_id, span_id]


async def test_asyncio_trace_context_is_propagated() -> None:
    servicer = Scripted(failures=0)
    server, target = serve(servicer)
    tracer = TracerProvider().get_tracer("test")
    try:
        async with AsyncDedupClient(target) as client:
            with tracer.start_as_current_span("consume") as span:
                await client.check("ns", "id")
                trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        server.stop(None)
    assert servicer.metadata[-1]["traceparent"].split("-")[1] == trace_id


def test_without_a_span_no_traceparent_is_sent(flaky: tuple[Scripted, str]) -> None:
    servicer, target = flaky
    assert trace.get_current_span().get_span_context().is_valid is False
    with DedupClient(target, retry=FAST) as client:
        client.claim("ns", "id")
    assert "traceparent" not in servicer.metadata[-1]


def test_static_metadata_is_sent(flaky: tuple[Scripted, str]) -> None:
    servicer, target = flaky
    extra: Any = [("authorization", "Bearer t0k")]
    with DedupClient(target, retry=FAST, metadata=extra) as client:
        client.claim("ns", "id")
    assert servicer.metadata[-1]["authorization"] == "Bearer t0k"
