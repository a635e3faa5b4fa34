"""The root sampling decision taken before any span exists (ADR 0075): unit checks against the SDK's
own sampler, then a real sidecar sampling new traces at ratio 0 and following the caller's decision."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, TraceIdRatioBased
from opentelemetry.trace import INVALID_TRACE_ID, NonRecordingSpan, SpanContext, TraceFlags

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from sidecar.domain.keys import id_digest
from sidecar.telemetry.sampling import root_sampling
from tests.support.otlp_receiver import OtlpReceiver, attributes
from tests.support.redis_server import RedisProcess
from tests.support.sidecar_process import SidecarProcess
from tests.telemetry.test_traces import client_span, metadata, new_id, server_span_of


@pytest.mark.parametrize(
    ("name", "arg", "sampler", "sampled"),
    [
        ("", "", "ParentBased{root:AlwaysOnSampler", 1.0),
        ("always_on", "", "AlwaysOnSampler", 1.0),
        ("parentbased_always_off", "", "ParentBased{root:AlwaysOffSampler", 0.0),
        ("always_off", "", "AlwaysOffSampler", 0.0),
        ("parentbased_traceidratio", "0.1", "ParentBased{root:TraceIdRatioBased{0.1}", 0.1),
        ("traceidratio", "0.25", "TraceIdRatioBased{0.25}", 0.25),
        ("traceidratio", "nonsense", "TraceIdRatioBased{1.0}", 1.0),  # as the SDK reads a bad argument
    ],
)
def test_standard_samplers_are_decided_before_a_span_exists(name: str, arg: str, sampler: str, sampled: float) -> None:
    roots = root_sampling({"OTEL_TRACES_SAMPLER": name, "OTEL_TRACES_SAMPLER_ARG": arg})
    assert roots.sampler is not None
    assert roots.sampler.get_description().startswith(sampler)
    assert roots.bound is not None
    random.seed(12)
    decisions = [roots.root_trace_id() for _ in range(20_000)]
    share = sum(d is not None for d in decisions) / len(decisions)
    assert abs(share - sampled) < 0.02


def test_an_unknown_sampler_is_left_to_the_sdk() -> None:
    roots = root_sampling({"OTEL_TRACES_SAMPLER": "my_entry_point_sampler"})
    assert roots.sampler is None
    assert roots.bound is None


def test_the_root_decision_is_the_sdks_and_a_sampled_span_gets_the_decided_trace_id() -> None:
    roots = root_sampling({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.3"})
    assert roots.sampler is not None
    tracer = TracerProvider(sampler=roots.sampler, id_generator=roots.ids).get_tracer("test")
    reference = TraceIdRatioBased(0.3)
    random.seed(7)
    sampled = 0
    for _ in range(2_000):
        state = random.getstate()
        drawn = random.getrandbits(128)  # the id the decision is taken on
        random.setstate(state)
        trace_id = roots.root_trace_id()
        sdk = reference.should_sample(None, drawn, "x").decision
        assert (trace_id is not None) == (sdk is Decision.RECORD_AND_SAMPLE)
        if trace_id is None:
            continue
        sampled += 1
        roots.ids.prime(trace_id)
        span = tracer.start_span("dedup.v1.Dedup/Check")
        assert span.is_recording()
        assert span.get_span_context().trace_id == trace_id
        span.end()
    assert 450 < sampled < 750
    # Unprimed, the generator draws random ids as the SDK's does.
    assert roots.ids.generate_trace_id() != INVALID_TRACE_ID


def test_a_parent_based_sampler_still_follows_the_callers_flag() -> None:
    roots = root_sampling({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"})
    assert isinstance(roots.sampler, ParentBased)
    tracer = TracerProvider(sampler=roots.sampler, id_generator=roots.ids).get_tracer("test")
    for flags, recorded in ((TraceFlags.SAMPLED, True), (TraceFlags.DEFAULT, False)):
        parent = SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=TraceFlags(flags))
        span = tracer.start_span("child", trace.set_span_in_context(NonRecordingSpan(parent)))
        assert span.is_recording() is recorded
        assert span.get_span_context().trace_id == 0xABC


# -- a real sidecar: new traces sampled at ratio 0, callers' decisions followed --------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ratio_zero_sidecar(redis_server: RedisProcess, receiver: OtlpReceiver) -> Iterator[SidecarProcess]:
    env = {
        **receiver.exported_env(),
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0",
    }
    prefix = f"ts-{uuid.uuid4().hex}:"
    args = ["--redis-url", redis_server.url, "--key-prefix", prefix, "--metrics-listen", "127.0.0.1:0"]
    process = SidecarProcess(args, env=env).start()
    yield process
    process.stop()


@pytest.fixture
async def stub(ratio_zero_sidecar: SidecarProcess) -> AsyncIterator[dedup_pb2_grpc.DedupStub]:
    async with grpc.aio.insecure_channel(ratio_zero_sidecar.target) as channel:
        yield dedup_pb2_grpc.DedupStub(channel)


async def test_unsampled_new_traces_make_no_span_and_store_no_context(
    stub: dedup_pb2_grpc.DedupStub, receiver: OtlpReceiver
) -> None:
    untraced = [new_id() for _ in range(5)]
    for record_id in untraced:
        reply = await stub.Check(pb.CheckRequest(namespace="default", id=record_id))
        assert reply.outcome == pb.CHECK_OUTCOME_NEW
    # A sampled caller checks the first id again: its span is a child of the caller's, with the
    # Redis span under it, and has no link, because the unsampled original stored no trace context.
    parent = client_span()
    reply = await stub.Check(pb.CheckRequest(namespace="default", id=untraced[0]), metadata=metadata(parent))
    assert reply.outcome == pb.CHECK_OUTCOME_DUPLICATE
    span = server_span_of(receiver, parent)
    assert span.name == "dedup.v1.Dedup/Check"
    assert attributes(span)["dedup.outcome"] == "DUPLICATE"
    assert attributes(span)["dedup.id_hash"] == id_digest(untraced[0])
    assert list(span.links) == []
    redis = receiver.wait_span(lambda s: s.parent_span_id == span.span_id)
    assert redis.kind == Span.SPAN_KIND_CLIENT
    # Spans are exported in the order they end: the untraced calls' would have come first.
    hashes = {id_digest(record_id) for record_id in untraced}
    shown = [attributes(s).get("dedup.id_hash") for s in list(receiver.spans)]
    assert shown.count(id_digest(untraced[0])) == 1  # the sampled duplicate's span only
    assert not hashes.intersection(shown) - {id_digest(untraced[0])}


async def test_a_sampled_caller_links_to_a_sampled_original_and_an_unsampled_caller_gets_no_span(
    stub: dedup_pb2_grpc.DedupStub, receiver: OtlpReceiver
) -> None:
    record_id = new_id()
    first, second = client_span("first"), client_span("second")
    await stub.Check(pb.CheckRequest(namespace="default", id=record_id), metadata=metadata(first))
    # The caller's context with the sampled flag off: parent-based, nothing is recorded.
    unsampled = SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=True, trace_flags=TraceFlags(0))
    carrier = metadata(NonRecordingSpan(unsampled))
    assert carrier[0][1].endswith("-00")
    await stub.Check(pb.CheckRequest(namespace="default", id=record_id), metadata=carrier)
    await stub.Check(pb.CheckRequest(namespace="default", id=record_id), metadata=metadata(second))
    original = server_span_of(receiver, first)
    duplicate = server_span_of(receiver, second)
    assert [(link.trace_id, link.span_id) for link in duplicate.links] == [(original.trace_id, original.span_id)]
    assert not [s for s in list(receiver.spans) if s.trace_id == (0x1234).to_bytes(16, "big")]


async def test_a_new_trace_at_ratio_one_is_a_root_span(redis_server: RedisProcess, receiver: OtlpReceiver) -> None:
    env = {**receiver.exported_env(), "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"}
    process = SidecarProcess(["--redis-url", redis_server.url, "--key-prefix", f"tr-{uuid.uuid4().hex}:"], env=env)
    process.start()
    try:
        record_id = new_id()
        async with grpc.aio.insecure_channel(process.target) as channel:
            await dedup_pb2_grpc.DedupStub(channel).Check(pb.CheckRequest(namespace="default", id=record_id))
        span = receiver.wait_span(lambda s: attributes(s).get("dedup.id_hash") == id_digest(record_id))
        assert span.parent_span_id == b""
        assert span.kind == Span.SPAN_KIND_SERVER
        receiver.wait_span(lambda s: s.parent_span_id == span.span_id)  # and its Redis span
    finally:
        process.stop()
