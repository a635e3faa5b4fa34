"""Python client transport rules against a scripted gRPC server (not the sidecar):
which calls are retried on UNAVAILABLE, deadlines, trace-context propagation, error details,
and the stream transport (coalescing, per-call deadlines, broken streams, unary fallback)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from dedup_client import (
    AsyncDedupClient,
    ClaimOutcome,
    DeadlineExceededError,
    DedupClient,
    DedupError,
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


# ---- the stream transport (the default) ----


class StreamScript(Scripted):
    """Answers Stream messages like the sidecar would, and records what it was sent.

    id "hold": the answer waits until `hold` is set (then ACQUIRED, token 99).
    id "busy": a Claim that may not wait (wait_ms 0, or in an answer_at_once batch) is IN_PROGRESS;
    one that waits is ACQUIRED, token 42 (woken).
    id "break": the stream fails with UNAVAILABLE (the connection dropped).
    an empty id: the message (a whole batch) is answered with an INVALID_ARGUMENT error.
    namespace "bad": the message is answered with an INVALID_ARGUMENT error.
    """

    def __init__(self) -> None:
        super().__init__(failures=0)
        self.kinds: list[str] = []
        self.batch_sizes: list[int] = []
        self.released: list[int] = []
        self.claim_waits: list[tuple[bytes, int]] = []  # (id, wait_ms) of every Claim, batch items too
        self.at_once: list[bool] = []  # answer_at_once of every ClaimBatch
        self.streams = 0
        self.hold = threading.Event()

    def _one(self, kind: str, body: Any, context: grpc.ServicerContext, at_once: bool = False) -> Any:
        if body.id == b"break":
            context.abort(grpc.StatusCode.UNAVAILABLE, "connection dropped")
        if kind == "check":
            return pb.CheckResponse(outcome=pb.CHECK_OUTCOME_NEW)
        if kind == "claim":
            with self.lock:
                self.claim_waits.append((body.id, body.wait_ms))
            if body.id == b"busy":
                if body.wait_ms and not at_once:
                    return pb.ClaimResponse(outcome=pb.CLAIM_OUTCOME_ACQUIRED, fencing_token=42)
                return pb.ClaimResponse(outcome=pb.CLAIM_OUTCOME_IN_PROGRESS, retry_after_ms=3000)
            if body.id == b"hold":
                self.hold.wait(10)
                return pb.ClaimResponse(outcome=pb.CLAIM_OUTCOME_ACQUIRED, fencing_token=99)
            return pb.ClaimResponse(outcome=pb.CLAIM_OUTCOME_ACQUIRED, fencing_token=7)
        if kind == "release":
            self.released.append(body.fencing_token)
            return pb.ReleaseResponse(outcome=pb.RELEASE_OUTCOME_RELEASED)
        if kind == "renew":
            return pb.RenewResponse(outcome=pb.RENEW_OUTCOME_RENEWED)
        return pb.CommitResponse(outcome=pb.COMMIT_OUTCOME_COMMITTED)

    def Stream(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        with self.lock:
            self.streams += 1
            self.metadata.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
        for m in request_iterator:
            kind = m.WhichOneof("request")
            body = getattr(m, kind)
            with self.lock:
                self.kinds.append(kind)
            out = pb.StreamResponse(correlation_id=m.correlation_id)
            empty = [n for n, item in enumerate(getattr(body, "items", [body])) if not item.id]
            if empty:  # like the sidecar: a batch is validated as a whole before anything runs
                out.error.code = code_pb2.INVALID_ARGUMENT
                out.error.message = "empty id"
                out.error.field_violations.add(
                    field=f"items[{empty[0]}].id" if kind.endswith("_batch") else "id", description="empty"
                )
            elif kind.endswith("_batch"):
                at_once = kind == "claim_batch" and body.answer_at_once
                with self.lock:
                    self.batch_sizes.append(len(body.items))
                    if kind == "claim_batch":
                        self.at_once.append(at_once)
                single = kind.removesuffix("_batch")
                getattr(out, kind).results.extend(self._one(single, item, context, at_once) for item in body.items)
            elif body.namespace == "bad":
                out.error.code = code_pb2.INVALID_ARGUMENT
                out.error.message = "bad namespace"
                out.error.field_violations.add(field="namespace", description="x")
            else:
                getattr(out, kind).CopyFrom(self._one(kind, body, context))
            yield out


@pytest.fixture
def scripted_stream() -> Iterator[tuple[StreamScript, str]]:
    servicer = StreamScript()
    server, target = serve(servicer)
    yield servicer, target
    servicer.hold.set()
    server.stop(None)


def test_calls_go_over_one_stream(scripted_stream: tuple[StreamScript, str]) -> None:
    servicer, target = scripted_stream
    with DedupClient(target) as client:
        assert client.transport == "stream"
        assert client.claim("ns", "a").fencing_token == 7
        assert client.commit("ns", "a", 7).outcome is not None
        assert client.check("ns", "b").outcome is not None
        assert client.renew("ns", "a", 7).outcome is not None
        assert client.release("ns", "a", 7).outcome is not None
        with pytest.raises(DedupError, match="UNIMPLEMENTED"):
            client.inspect("ns", "a")  # Inspect stays unary (Scripted has none)
    assert servicer.kinds == ["claim", "commit", "check", "renew", "release"]
    assert servicer.streams == 1
    assert servicer.calls == {}  # no unary call of the stream's verbs


def test_unary_transport_setting(scripted_stream: tuple[StreamScript, str]) -> None:
    servicer, target = scripted_stream
    with DedupClient(target, transport="unary") as client:
        assert client.transport == "unary"
        client.claim("ns", "a")
    assert servicer.streams == 0
    assert servicer.calls == {"Claim": 1}


async def test_concurrent_calls_are_coalesced_into_batches(scripted_stream: tuple[StreamScript, str]) -> None:
    servicer, target = scripted_stream
    async with AsyncDedupClient(target) as client:
        await client.check("ns", "warm-up")  # the stream is open
        results = await asyncio.gather(*(client.check("ns", f"id-{n}") for n in range(250)))
        claims = await asyncio.gather(*(client.claim("ns", f"c-{n}") for n in range(3)))
    assert all(r.outcome is not None for r in results)
    assert [c.fencing_token for c in claims] == [7, 7, 7]
    assert servicer.kinds[1:] == ["check_batch", "check_batch", "check_batch", "claim_batch"]
    assert servicer.batch_sizes == [100, 100, 50, 3]


def test_sync_threads_share_the_stream(scripted_stream: tuple[StreamScript, str]) -> None:
    servicer, target = scripted_stream
    with DedupClient(target) as client, ThreadPoolExecutor(16) as pool:
        tokens = list(pool.map(lambda n: client.claim("ns", f"t-{n}").fencing_token, range(200)))
    assert tokens == [7] * 200
    assert servicer.streams == 1
    assert sum(servicer.batch_sizes) + servicer.kinds.count("claim") == 200


async def test_waiting_claims_are_coalesced_without_waiting_then_wait_alone(
    scripted_stream: tuple[StreamScript, str],
) -> None:
    """ADR 0018: pending waiting Claims share a ClaimBatch with wait_ms 0; an IN_PROGRESS one waits on its own."""
    servicer, target = scripted_stream
    async with AsyncDedupClient(target) as client:
        await client.check("ns", "warm-up")  # the stream is open
        claims = await asyncio.gather(
            client.claim("ns", "w-0", wait_ms=2000),
            client.claim("ns", "busy", wait_ms=2000),
            client.claim("ns", "w-1", wait_ms=2000),
            client.claim("ns", "no-wait"),
        )
    assert [c.fencing_token for c in claims] == [7, 42, 7, 7]
    assert servicer.kinds == ["check", "claim_batch", "claim"]
    assert servicer.at_once == [True]  # nothing in the batch waits; each wait_ms goes as asked (validated)
    assert servicer.claim_waits[:4] == [(b"w-0", 2000), (b"busy", 2000), (b"w-1", 2000), (b"no-wait", 0)]
    (busy, left_ms) = servicer.claim_waits[4]
    assert busy == b"busy"
    assert 0 < left_ms <= 2000


def test_an_in_progress_claim_that_did_not_ask_to_wait_is_answered(scripted_stream: tuple[StreamScript, str]) -> None:
    servicer, target = scripted_stream
    with DedupClient(target) as client, ThreadPoolExecutor(8) as pool:
        client.check("ns", "warm-up")
        outcomes = list(pool.map(lambda n: client.claim("ns", "busy" if n == 0 else f"f-{n}"), range(8)))
    assert outcomes[0].outcome is ClaimOutcome.IN_PROGRESS
    assert [(i, w) for i, w in servicer.claim_waits if i == b"busy"] == [(b"busy", 0)]  # answered, not resent


async def test_a_lone_waiting_claim_waits_in_one_round_trip(scripted_stream: tuple[StreamScript, str]) -> None:
    servicer, target = scripted_stream
    async with AsyncDedupClient(target) as client:
        assert (await client.claim("ns", "busy", wait_ms=1000)).fencing_token == 42
    assert servicer.kinds == ["claim"]
    assert servicer.claim_waits == [(b"busy", 1000)]


def test_a_wait_longer_than_the_deadline_goes_unary(scripted_stream: tuple[StreamScript, str]) -> None:
    """The sidecar then ends the wait before the deadline and still checks wait_ms against the policy."""
    servicer, target = scripted_stream
    with DedupClient(target) as client:
        client.claim("ns", "fits", wait_ms=1000, timeout=5)
        client.claim("ns", "too-long", wait_ms=20_000, timeout=5)
    assert servicer.kinds == ["claim"]
    assert servicer.calls == {"Claim": 1}


def test_stream_errors_raise_like_unary_errors(scripted_stream: tuple[StreamScript, str]) -> None:
    _, target = scripted_stream
    with DedupClient(target) as client, pytest.raises(InvalidArgumentError) as caught:
        client.check("bad", "id")
    assert [v.field for v in caught.value.field_violations] == ["namespace"]


def test_deadline_abandons_a_call_and_a_late_acquired_is_released(scripted_stream: tuple[StreamScript, str]) -> None:
    servicer, target = scripted_stream
    with DedupClient(target) as client:
        with pytest.raises(DeadlineExceededError):
            client.claim("ns", "hold", timeout=0.3)
        servicer.hold.set()  # the late ACQUIRED (token 99) arrives now
        deadline = time.monotonic() + 5
        while 99 not in servicer.released:  # bounded polling for the client's Release
            assert time.monotonic() < deadline, "the late ACQUIRED was not released"
            time.sleep(0.01)
        assert client.claim("ns", "after").fencing_token == 7  # the stream still serves


async def test_asyncio_deadline_abandons_and_releases(scripted_stream: tuple[StreamScript, str]) -> None:
    servicer, target = scripted_stream
    async with AsyncDedupClient(target) as client:
        with pytest.raises(DeadlineExceededError):
            await client.claim("ns", "hold", timeout=0.3)
        servicer.hold.set()
        deadline = time.monotonic() + 5
        while 99 not in servicer.released:
            assert time.monotonic() < deadline, "the late ACQUIRED was not released"
            await asyncio.sleep(0.01)


def test_broken_stream_retries_claim_but_never_check(scripted_stream: tuple[StreamScript, str]) -> None:
    servicer, target = scripted_stream
    with DedupClient(target, retry=FAST) as client:
        with pytest.raises(UnavailableError):
            client.check("ns", "break")
        assert servicer.streams == 1
        with pytest.raises(UnavailableError):
            client.claim("ns", "break")
        assert servicer.streams == 1 + FAST.max_attempts  # each retry opened a new stream
        assert client.claim("ns", "ok").fencing_token == 7


async def test_asyncio_broken_stream_reopens(scripted_stream: tuple[StreamScript, str]) -> None:
    servicer, target = scripted_stream
    async with AsyncDedupClient(target, retry=FAST) as client:
        with pytest.raises(UnavailableError):
            await client.check("ns", "break")
        assert (await client.claim("ns", "ok")).fencing_token == 7
    assert servicer.streams == 2


def test_without_stream_the_client_falls_back_to_unary(flaky: tuple[Scripted, str]) -> None:
    servicer, target = flaky  # Scripted has no Stream: UNIMPLEMENTED
    with DedupClient(target, retry=FAST) as client:
        assert client.claim("ns", "id").fencing_token == 7
        assert client.transport == "unary"
        client.claim("ns", "id")
    assert servicer.calls == {"Claim": 4}


def test_closing_the_client_leaves_no_stream_threads(scripted_stream: tuple[StreamScript, str]) -> None:
    _, target = scripted_stream
    for _ in range(3):
        with DedupClient(target) as client:
            client.check("ns", "x")
    assert not [t for t in threading.enumerate() if t.name == "dedup-stream"]


def test_the_stream_carries_static_metadata_not_one_call_s_trace(scripted_stream: tuple[StreamScript, str]) -> None:
    """One stream serves many traces: its messages must not claim the trace of the call that opened it."""
    servicer, target = scripted_stream
    tracer = TracerProvider().get_tracer("test")
    with (
        DedupClient(target, metadata=[("authorization", "Bearer t0k")]) as client,
        tracer.start_as_current_span("consume"),
    ):
        client.check("ns", "id")
    assert servicer.metadata[-1]["authorization"] == "Bearer t0k"
    assert "traceparent" not in servicer.metadata[-1]


async def test_a_batch_refused_as_a_whole_is_resent_call_by_call(scripted_stream: tuple[StreamScript, str]) -> None:
    """One caller's bad input must not fail the other callers coalesced with it."""
    servicer, target = scripted_stream
    async with AsyncDedupClient(target) as client:
        await client.check("ns", "warm-up")
        results = await asyncio.gather(
            client.check("ns", "a"), client.check("ns", ""), client.check("ns", "b"), return_exceptions=True
        )
    assert [type(r).__name__ for r in results] == ["CheckResult", "InvalidArgumentError", "CheckResult"]
    bad = results[1]
    assert isinstance(bad, InvalidArgumentError)
    assert [v.field for v in bad.field_violations] == ["id"]  # as the unary call would say
    assert servicer.kinds == ["check", "check_batch", "check", "check", "check"]


async def test_coalesced_messages_stay_small(scripted_stream: tuple[StreamScript, str]) -> None:
    """Large commit results are split across messages, below gRPC's default message limit."""
    servicer, target = scripted_stream
    async with AsyncDedupClient(target) as client:
        await client.check("ns", "warm-up")
        big = b"r" * 300_000
        results = await asyncio.gather(*(client.commit("ns", f"id-{n}", 7, result=big) for n in range(10)))
    assert all(r.outcome is not None for r in results)
    assert servicer.kinds[1:] == ["commit_batch"] * 3 + ["commit"]  # at most 1 MiB per message
    assert servicer.batch_sizes == [3, 3, 3]
