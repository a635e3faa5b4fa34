"""Telemetry around the dedup.v1.Dedup method handlers: the RPC's server span with its dedup
annotations, and the RPC duration histogram.

Health and reflection are never wrapped. Nothing is wrapped when tracing and metrics are
off. It is not a grpc.aio ServerInterceptor: grpc.aio runs any interceptor as an awaited
chain on every call, which alone cost ~50-70 µs per call here (ADR 0072), so the handlers
are wrapped once instead, when the service is registered.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from sidecar.telemetry.current import CURRENT_CALL
from sidecar.telemetry.metrics import DedupMetrics
from sidecar.telemetry.sampling import RootSampling
from sidecar.telemetry.spans import CallSpan

DEDUP_PREFIX = "/dedup.v1.Dedup/"

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
else:  # not subscriptable at run time
    Handler = grpc.RpcMethodHandler
HandlerWrapper = Callable[[str, Handler], Handler]
Unary = Callable[[Any, Any], Awaitable[Any]]
Streaming = Callable[[Any, Any], AsyncIterator[Any]]

# Unary methods whose request carries the caller's fencing token (shown on the span).
TOKEN_METHODS = frozenset({"Commit", "Release", "Renew"})
STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def operation_of(method: str) -> str:
    """The `operation` label of a unary method: CheckBatch -> check_batch (a Stream message's oneof name)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", method).lower()


def _rewrap(
    handler: Handler,
    unary: Callable[[Unary], Unary],
    streaming: Callable[[Streaming], Streaming] | None,
) -> Handler:
    """The handler with its behaviour wrapped; only unary-unary and stream-stream exist in dedup.v1."""
    if not handler.request_streaming and not handler.response_streaming:
        return grpc.unary_unary_rpc_method_handler(
            unary(cast(Unary, handler.unary_unary)),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if streaming is not None and handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            streaming(cast(Streaming, handler.stream_stream)),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


class TelemetryHandlers:
    """Traces and metrics of dedup.v1.Dedup methods, wrapped around each method's handler once, when
    the service is registered (transport/server.py), not in a grpc.aio interceptor (ADR 0072).

    Traces (when `tracer` is set): continues the caller's W3C context from the metadata, starts
    the server span named per the RPC conventions (`rpc.system`, `rpc.service`, `rpc.method`,
    `rpc.grpc.status_code`; peer and user agent only on recorded spans), makes it current, and
    gives a recorded call a CallSpan that collects its decisions. A call without trace context that
    the root sampler drops (`sampling`, ADR 0075) gets no span and no context at all; an unsampled
    call with the caller's context pays for the extract, the SDK's sampler and a context attach.
    Metrics (when `metrics` is set): dedup_rpc_duration_seconds{method,operation,code} per unary
    RPC and per Stream message (from the server reading the message to the server yielding its
    response, labelled by the message's operation and the code of its `error`, OK when none).
    """

    def __init__(
        self, tracer: Tracer | None = None, metrics: DedupMetrics | None = None, sampling: RootSampling | None = None
    ) -> None:
        self._tracer = tracer
        self._metrics = metrics
        self._sampling = sampling

    def wrap(self, method: str, handler: Handler) -> Handler:
        """The handler of `method` (`/dedup.v1.Dedup/Check`) with traces and metrics around it."""
        short = method[len(DEDUP_PREFIX) :]
        operation = operation_of(short)
        record = self._metrics.rpc_duration if self._metrics is not None else None
        start = _span_starter(self._tracer, method, self._sampling) if self._tracer is not None else None
        carries_token = short in TOKEN_METHODS
        batch = short.endswith("Batch")  # a batch span gets counts, not one decision's attributes

        def unary(behavior: Unary) -> Unary:
            async def run(request: Any, context: Any) -> Any:
                began = time.perf_counter()
                code = "OK"
                traced = start(context, aggregate=batch) if start is not None else None
                if traced is not None and traced.call is not None and carries_token:
                    traced.call.attributes["dedup.fencing_token"] = request.fencing_token
                try:
                    return await behavior(request, context)
                except BaseException as error:
                    code = _failed(traced, context, error)
                    raise
                finally:
                    if traced is not None:
                        traced.end()
                    if record is not None:
                        record(time.perf_counter() - began, short, operation, code)

            return run

        def streaming(behavior: Streaming) -> Streaming:
            async def run(requests: Any, context: Any) -> AsyncIterator[Any]:
                traced = start(context, aggregate=True) if start is not None else None
                try:
                    if record is None:
                        async for response in behavior(requests, context):
                            yield response
                    else:
                        async for response in _timed_stream(behavior, requests, context, short, record):
                            yield response
                except BaseException as error:
                    _failed(traced, context, error)
                    raise
                finally:
                    if traced is not None:
                        traced.end()

            return run

        return _rewrap(handler, unary, streaming)


class _Traced:
    """One RPC's server span, the context token that made it current, and its CallSpan if recorded."""

    __slots__ = ("call", "call_token", "span", "token")

    def __init__(self, span: Span, token: object, call: CallSpan | None, call_token: Any) -> None:
        self.span = span
        self.token = token
        self.call = call
        self.call_token = call_token

    def end(self) -> None:
        if self.call is not None:
            self.call.finish()
            CURRENT_CALL.reset(self.call_token)
        self.span.end()
        otel_context.detach(self.token)  # type: ignore[arg-type]


def _span_starter(tracer: Tracer, method: str, sampling: RootSampling | None) -> Callable[..., _Traced | None]:
    """Starts a method's server span for one call, or returns None for a call that is not traced at
    all; the per-method part is computed once."""
    service, _, short = method.lstrip("/").partition("/")
    name = f"{service}/{short}"
    attributes: dict[str, str | int] = {
        "rpc.system": "grpc",
        "rpc.service": service,
        "rpc.method": short,
        "rpc.grpc.status_code": 0,
    }

    fields = propagate.get_global_textmap().fields  # the metadata keys the propagators read
    roots = sampling if sampling is not None and sampling.bound is not None else None

    def start(context: Any, *, aggregate: bool) -> _Traced | None:
        metadata = context.invocation_metadata() or ()
        carrier = {item.key: item.value for item in metadata if item.key in fields}
        if carrier:  # the caller's context: the SDK's sampler follows it (parent-based)
            parent = propagate.extract(carrier)
        else:
            parent = None  # a new trace
            if roots is not None:
                trace_id = roots.root_trace_id()
                if trace_id is None:
                    return None  # not sampled: no span, no context, nothing stored (ADR 0075)
                roots.ids.prime(trace_id)
        span = tracer.start_span(name, parent, kind=SpanKind.SERVER, attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        if not span.is_recording():
            return _Traced(span, token, None, None)
        agent = next((item.value for item in metadata if item.key == "user-agent"), None)
        span.set_attributes(_peer_attributes(context.peer(), agent))
        call = CallSpan(span, tracer, aggregate)
        return _Traced(span, token, call, CURRENT_CALL.set(call))

    return start


def _peer_attributes(peer: str, user_agent: str | None) -> dict[str, str]:
    """`ipv4:127.0.0.1:57284` -> net.peer.ip/port (and name for loopback); the caller's user agent."""
    out: dict[str, str] = {}
    if user_agent:
        out["rpc.user_agent"] = user_agent
    if peer.startswith(("ipv4:", "ipv6:")):
        ip, _, port = peer.split(",")[0].split(":", 1)[1].rpartition(":")
        ip = unquote(ip)
        out |= {"net.peer.ip": ip, "net.peer.port": port}
        if ip in ("[::1]", "127.0.0.1"):
            out["net.peer.name"] = "localhost"
    return out


# Server span status per the RPC conventions: these codes are the server's fault, the others the caller's.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def _failed(traced: _Traced | None, context: Any, error: BaseException) -> str:
    """The status code name of a call that raised (an abort sets the code first; anything else is
    UNKNOWN), written to its span."""
    status = context.code()
    code = status if isinstance(status, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
    # A cancelled call or a closed stream (CancelledError, GeneratorExit) is not the server failing.
    if traced is not None and traced.span.is_recording() and isinstance(error, Exception):
        span = traced.span
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code in _SERVER_ERRORS:
            span.set_status(Status(StatusCode.ERROR, f"{code}:{context.details() or ''}"))
        if not isinstance(status, grpc.StatusCode) and isinstance(error, Exception):
            span.record_exception(error)  # not an abort: an error nobody mapped to a status
    return code.name


async def _timed_stream(
    behavior: Streaming, requests: Any, context: Any, method: str, record: Callable[[float, str, str, str], None]
) -> AsyncIterator[Any]:
    """The Stream's responses, each message's duration recorded."""
    # correlation_id -> (read at, operation) of messages awaiting their response; a queue
    # per id because nothing stops a client from reusing one.
    pending: dict[int, deque[tuple[float, str]]] = {}

    async def timed() -> AsyncIterator[Any]:
        async for message in requests:
            started = (time.perf_counter(), message.WhichOneof("request") or "unset")
            pending.setdefault(message.correlation_id, deque()).append(started)
            yield message

    async for response in behavior(timed(), context):
        waiting = pending.get(response.correlation_id)
        if waiting:
            start, op = waiting.popleft()
            if not waiting:
                del pending[response.correlation_id]
            failed = response.WhichOneof("response") == "error"
            code = STATUS_NAMES.get(response.error.code, "UNKNOWN") if failed else "OK"
            record(time.perf_counter() - start, method, op, code)
        yield response
