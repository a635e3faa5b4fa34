"""The dedup.v1.Dedup method handlers, built from the service descriptor: the one path every call takes.

For every method of the service, in order: the request is parsed (a message that is not valid
protobuf is INVALID_ARGUMENT, with one rate-limited warning, instead of grpc's UNKNOWN and a
traceback), the caller is authorised (transport/authorizer.py), then the servicer runs. A unary
method missing from OPERATIONS, or a method of another shape than unary or bidirectional
stream, fails the server's construction: no RPC can be added without its check.

Stream: the caller is identified when it opens, and again whenever the token directory was
reloaded (a revoked token stops working on streams opened before); every message is authorised
as it is read, and a denied or unparseable message is answered with its own `error` (the stream
goes on) without reaching the servicer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError, Message

from dedup.v1 import dedup_pb2 as pb
from sidecar.domain.authz import Caller
from sidecar.domain.errors import DedupError, FieldViolation, InvalidArgument
from sidecar.transport.authorizer import Authorizer
from sidecar.transport.servicer import Context, DedupServicer
from sidecar.transport.status import to_grpc_status, to_item_error

if TYPE_CHECKING:
    from sidecar.telemetry.interceptors import HandlerWrapper

log = logging.getLogger("dedup.transport")

SERVICE = pb.DESCRIPTOR.services_by_name["Dedup"]

# The operation each unary method is authorised as (Forget is the admin one, domain/authz.py).
OPERATIONS = {
    "Check": "check",
    "Claim": "claim",
    "Commit": "commit",
    "Release": "release",
    "Renew": "renew",
    "Inspect": "inspect",
    "Forget": "forget",
    "CheckBatch": "check",
    "ClaimBatch": "claim",
    "CommitBatch": "commit",
}
MALFORMED_WARNING_EVERY_S = 10.0


@dataclass(frozen=True, slots=True)
class Malformed:
    """A request that did not parse as the method's message."""

    type_name: str
    error: str

    def invalid(self) -> InvalidArgument:
        return InvalidArgument([FieldViolation("request", f"not a valid {self.type_name} message")])


class _Throttled:
    """At most one warning per interval, saying how many were left out."""

    def __init__(self, every_s: float) -> None:
        self._every_s = every_s
        self._next = 0.0
        self._skipped = 0

    def warn(self, method: str, bad: Malformed) -> None:
        now = time.monotonic()
        if now < self._next:
            self._skipped += 1
            return
        log.warning(
            "malformed request: not valid protobuf, answered INVALID_ARGUMENT",
            extra={"method": method, "error": bad.error, "similar_not_logged": self._skipped},
        )
        self._next, self._skipped = now + self._every_s, 0


_malformed = _Throttled(MALFORMED_WARNING_EVERY_S)


class InFlight:
    """--max-concurrent-rpcs: calls (a Stream counts as one for its lifetime) beyond the limit are refused.

    Done here, not with grpc's maximum_concurrent_rpcs, which refused some streams with
    `INTERNAL: Internal error from Core` instead of RESOURCE_EXHAUSTED.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit  # 0: none
        self.count = 0
        self.refusing = 0  # streams being refused message by message (_refuse_stream)

    def enter(self) -> None:
        if self.limit and self.count >= self.limit:
            raise Overloaded(self.limit)
        self.count += 1

    def leave(self) -> None:
        self.count -= 1


class Overloaded(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} calls in progress (--max-concurrent-rpcs); retry later")


def _lenient(message_type: type[Message]) -> Callable[[bytes], Message | Malformed]:
    def deserialize(data: bytes) -> Message | Malformed:
        try:
            return message_type.FromString(data)
        except (DecodeError, ValueError, RuntimeError) as err:  # RuntimeError: upb on deep recursion
            return Malformed(message_type.DESCRIPTOR.name, str(err))

    return deserialize


async def _abort(context: Context, err: DedupError) -> None:
    status = to_grpc_status(err)
    await context.abort(status.code, status.details, status.trailing_metadata)


async def _admit(context: Context, in_flight: InFlight) -> None:
    try:
        in_flight.enter()
    except Overloaded as err:
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(err))


def _unary(
    name: str, run: Callable[[Any, Context], Awaitable[Message]], authorizer: Authorizer, in_flight: InFlight
) -> Callable[[Any, Context], Awaitable[Message]]:
    operation = OPERATIONS[name]  # KeyError: a new unary RPC needs its operation here

    async def handle(request: Message | Malformed, context: Context) -> Message:
        await _admit(context, in_flight)
        try:
            try:
                if isinstance(request, Malformed):
                    _malformed.warn(name, request)
                    raise request.invalid()
                authorizer.check(authorizer.caller(context), operation, request)
            except DedupError as err:
                await _abort(context, err)
            return await run(request, context)
        finally:
            in_flight.leave()

    return handle


_END = object()


def _refusal(m: pb.StreamRequest | Malformed, err: Overloaded) -> pb.StreamResponse:
    refusal = pb.StreamResponse(correlation_id=0 if isinstance(m, Malformed) else m.correlation_id)
    refusal.error.code, refusal.error.message = grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], str(err)
    return refusal


async def _next(requests: AsyncIterator[pb.StreamRequest | Malformed]) -> pb.StreamRequest | Malformed | None:
    try:
        return await requests.__anext__()
    except StopAsyncIteration:
        return None


async def _chain(
    first: pb.StreamRequest | Malformed, rest: AsyncIterator[pb.StreamRequest | Malformed]
) -> AsyncIterator[pb.StreamRequest | Malformed]:
    yield first
    async for m in rest:
        yield m


def _stream(
    run: Callable[[AsyncIterator[Any], Context], AsyncIterator[pb.StreamResponse]],
    authorizer: Authorizer,
    in_flight: InFlight,
) -> Callable[[AsyncIterator[Any], Context], AsyncIterator[pb.StreamResponse]]:
    async def handle(
        requests: AsyncIterator[pb.StreamRequest | Malformed], context: Context
    ) -> AsyncIterator[pb.StreamResponse]:
        # Over the limit, each message is refused (RESOURCE_EXHAUSTED in its `error`) until a slot frees,
        # then the stream is admitted from that message on; a half-close while refused ends the call
        # RESOURCE_EXHAUSTED. Ending it at once (abort) is right on the wire, but grpc's asyncio client
        # then often reports `INTERNAL: Internal error from Core` (a write racing the early status,
        # grpc/grpc#36066). Beyond max(4 x limit, 1024) streams waiting this way, the call is aborted.
        while True:
            try:
                in_flight.enter()
                break
            except Overloaded as err:
                if in_flight.refusing >= max(4 * in_flight.limit, 1024):
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(err))
                in_flight.refusing += 1
                try:
                    m = await _next(requests)
                finally:
                    in_flight.refusing -= 1
                if m is None:
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(err))
                    return
                try:
                    in_flight.enter()
                except Overloaded:
                    yield _refusal(m, err)
                    continue
                requests = _chain(m, requests)  # admitted with this message
                break
        try:
            async for response in _guarded(requests, context):
                yield response
        finally:
            in_flight.leave()

    async def _guarded(
        requests: AsyncIterator[pb.StreamRequest | Malformed], context: Context
    ) -> AsyncIterator[pb.StreamResponse]:
        caller: Caller = authorizer.caller(context)
        version = authorizer.identities_version()
        out: asyncio.Queue[Any] = asyncio.Queue()  # the servicer's responses and the refusals

        def refuse(correlation_id: int, err: DedupError) -> None:
            refusal = pb.StreamResponse(correlation_id=correlation_id)
            refusal.error.CopyFrom(to_item_error(err))
            out.put_nowait(refusal)

        async def admitted() -> AsyncIterator[pb.StreamRequest]:
            nonlocal caller, version
            async for m in requests:
                if (latest := authorizer.identities_version()) != version:  # tokens reloaded: a revoked
                    caller, version = authorizer.caller(context), latest  # token stops working here too
                if isinstance(m, Malformed):
                    _malformed.warn("Stream", m)
                    refuse(0, m.invalid())
                    continue
                kind = m.WhichOneof("request")
                if kind is not None:
                    try:
                        authorizer.check(caller, kind.removesuffix("_batch"), getattr(m, kind))
                    except DedupError as err:
                        refuse(m.correlation_id, err)
                        continue
                yield m

        async def pump() -> None:
            try:
                async for response in run(admitted(), context):
                    out.put_nowait(response)
            finally:
                out.put_nowait(_END)

        task = asyncio.create_task(pump())
        try:
            while (response := await out.get()) is not _END:
                yield response
            await task  # its error, if any, ends the call
        finally:
            task.cancel()

    return handle


def dedup_handlers(
    servicer: DedupServicer, authorizer: Authorizer, max_in_flight: int = 0, wrap: HandlerWrapper | None = None
) -> grpc.GenericRpcHandler[Any, Any]:
    """Every method of dedup.v1.Dedup: admitted, parsed leniently and authorised before the servicer runs;
    each handler passed once through `wrap` (telemetry, ADR 0072)."""
    in_flight = InFlight(max_in_flight)
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in SERVICE.methods:
        request_type: type[Message] = getattr(pb, method.input_type.name)
        response_type: type[Message] = getattr(pb, method.output_type.name)
        behaviour = getattr(servicer, method.name)
        parse, serialize = _lenient(request_type), response_type.SerializeToString
        if method.client_streaming and method.server_streaming:
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                _stream(behaviour, authorizer, in_flight), request_deserializer=parse, response_serializer=serialize
            )
        elif not method.client_streaming and not method.server_streaming:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(method.name, behaviour, authorizer, in_flight),
                request_deserializer=parse,
                response_serializer=serialize,
            )
        else:
            raise TypeError(f"{method.full_name}: only unary and bidirectional methods are handled")
        if wrap is not None:
            handlers[method.name] = wrap(f"/{SERVICE.full_name}/{method.name}", handlers[method.name])
    return grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)
