"""Server interceptors: the dedup span annotations and the RPC duration histogram.

Both wrap only dedup.v1.Dedup methods (health and reflection pass through
untouched), and are installed only when tracing or metrics are on.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import grpc
from opentelemetry import trace
from opentelemetry.trace import Tracer

from sidecar.telemetry.current import CURRENT_CALL
from sidecar.telemetry.metrics import DedupMetrics
from sidecar.telemetry.spans import CallSpan

DEDUP_PREFIX = "/dedup.v1.Dedup/"

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:  # not subscriptable at run time
    Handler = grpc.RpcMethodHandler
    ServerInterceptor = grpc.aio.ServerInterceptor
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]
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


class _WrappingInterceptor(ServerInterceptor):
    """Wraps each dedup method's handler once and reuses it (the inner handler is the same object
    for every call of a method), so a call pays for the wrapper, not for building it."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}

    def _wrap(self, method: str, handler: Handler) -> Handler:
        raise NotImplementedError

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(DEDUP_PREFIX):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped


class SpanInterceptor(_WrappingInterceptor):
    """Runs inside the OpenTelemetry server interceptor: names the span per the RPC
    conventions and gives the call a CallSpan that collects its decisions."""

    def __init__(self, tracer: Tracer) -> None:
        super().__init__()
        self._tracer = tracer

    def _wrap(self, method: str, handler: Handler) -> Handler:
        name = method.lstrip("/")
        aggregate = method.endswith("Batch") or method.endswith("/Stream")
        carries_token = method[len(DEDUP_PREFIX) :] in TOKEN_METHODS
        tracer = self._tracer

        def start() -> CallSpan | None:
            span = trace.get_current_span()
            if not span.is_recording():
                return None
            span.update_name(name)
            return CallSpan(span, tracer, aggregate)

        def unary(behavior: Unary) -> Unary:
            async def run(request: Any, context: Any) -> Any:
                call = start()
                if call is None:
                    return await behavior(request, context)
                if carries_token:  # the token the caller presented (a decision carries only granted ones)
                    call.attributes["dedup.fencing_token"] = request.fencing_token
                token = CURRENT_CALL.set(call)
                try:
                    return await behavior(request, context)
                finally:
                    call.finish()
                    CURRENT_CALL.reset(token)

            return run

        def streaming(behavior: Streaming) -> Streaming:
            async def run(requests: Any, context: Any) -> AsyncIterator[Any]:
                call = start()
                CURRENT_CALL.set(call)  # this generator's own context: no reset needed
                try:
                    async for response in behavior(requests, context):
                        yield response
                finally:
                    if call is not None:
                        call.finish()

            return run

        return _rewrap(handler, unary, streaming)


class RpcMetricsInterceptor(_WrappingInterceptor):
    """Records dedup_rpc_duration_seconds{method,operation,code}: per unary dedup RPC, and per
    Stream message (from the server reading the message to the server yielding its response,
    labelled by the message's operation and the code of its `error`, OK when none)."""

    def __init__(self, metrics: DedupMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    def _wrap(self, method: str, handler: Handler) -> Handler:
        short = method[len(DEDUP_PREFIX) :]
        operation = operation_of(short)
        record = self._metrics.rpc_duration

        def unary(behavior: Unary) -> Unary:
            async def run(request: Any, context: Any) -> Any:
                start = time.perf_counter()
                code = "OK"
                try:
                    return await behavior(request, context)
                except BaseException:
                    status = context.code()
                    code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
                    raise
                finally:
                    record(time.perf_counter() - start, short, operation, code)

            return run

        def streaming(behavior: Streaming) -> Streaming:
            async def run(requests: Any, context: Any) -> AsyncIterator[Any]:
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
                        record(time.perf_counter() - start, short, op, code)
                    yield response

            return run

        return _rewrap(handler, unary, streaming)
