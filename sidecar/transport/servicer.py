"""The dedup.v1.Dedup servicer: translates proto <-> domain and errors <-> statuses, nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from sidecar.domain.errors import DedupError, FieldViolation, InvalidArgument, StoreError
from sidecar.service import DedupService
from sidecar.telemetry.trace_context import current as current_trace
from sidecar.transport import convert
from sidecar.transport.drain import Drain
from sidecar.transport.status import to_grpc_status, to_item_error

T = TypeVar("T")
Context = grpc.aio.ServicerContext[object, object]
# A waiting Claim answers IN_PROGRESS before the call's deadline: a fifth of the time left,
# at least 100 ms (the answer's way back) and at most 500 ms.
_WAIT_MARGIN_MIN_S = 0.1
_WAIT_MARGIN_MAX_S = 0.5


def _batch_results(results: Sequence[object | StoreError], to_message: Callable[[T], object], empty: type) -> list:  # type: ignore[type-arg]
    out = []
    converted: dict[int, object] = {}  # the store shares one decision object between equal items (every NEW)
    for result in results:
        if isinstance(result, StoreError):
            out.append(empty(error=to_item_error(result)))
        elif (message := converted.get(id(result))) is not None:
            out.append(message)
        else:
            out.append(converted.setdefault(id(result), to_message(result)))  # type: ignore[arg-type]
    return out


class DedupServicer(dedup_pb2_grpc.DedupServicer):
    def __init__(self, service: DedupService, default_deadline_s: float, stream_window: int = 128) -> None:
        self._service = service
        self._default_deadline_s = default_deadline_s
        self._stream_window = stream_window
        self.drain = Drain()  # in-flight work, for the graceful shutdown (app.py)
        self._stream_handlers: dict[str, Callable[[Any, float], Awaitable[Message]]] = {
            "check": self._stream_check,
            "claim": self._stream_claim,
            "commit": self._stream_commit,
            "release": self._stream_release,
            "renew": self._stream_renew,
            "check_batch": lambda body, budget: self._check_batch(body, budget, None),
            "claim_batch": lambda body, budget: self._claim_batch(body, budget, None),
            "commit_batch": lambda body, budget: self._commit_batch(body, budget, None),
        }

    def _timeout(self, context: Context) -> float:
        """The store's time budget: the caller's deadline less a margin to answer in, or the default."""
        remaining = context.time_remaining()
        if remaining is None:
            return self._default_deadline_s
        return max(remaining * 0.9 - 0.005, 0.0)

    def _wait_limit(self, context: Context) -> float:
        """How long a unary Claim may wait: until shortly before the caller's deadline (or the default)."""
        remaining = context.time_remaining()
        if remaining is None:
            remaining = self._default_deadline_s
        return remaining - min(max(remaining / 5, _WAIT_MARGIN_MIN_S), _WAIT_MARGIN_MAX_S)

    async def _call(self, context: Context, run: Callable[[float], Awaitable[T]]) -> T:
        with self.drain.track():
            try:
                return await run(self._timeout(context))
            except DedupError as err:
                status = to_grpc_status(err)
                await context.abort(status.code, status.details, status.trailing_metadata)
                raise  # unreachable: abort raises

    async def Check(self, request: pb.CheckRequest, context: Context) -> pb.CheckResponse:
        req = convert.check_request(request)
        return convert.check_response(
            await self._call(context, lambda t: self._service.check(req, timeout_s=t, trace=current_trace()))
        )

    async def Claim(self, request: pb.ClaimRequest, context: Context) -> pb.ClaimResponse:
        req = convert.claim_request(request)
        limit = self._wait_limit(context)
        return convert.claim_response(
            await self._call(
                context, lambda t: self._service.claim(req, timeout_s=t, trace=current_trace(), wait_limit_s=limit)
            )
        )

    async def Commit(self, request: pb.CommitRequest, context: Context) -> pb.CommitResponse:
        req = convert.commit_request(request)
        return convert.commit_response(
            await self._call(context, lambda t: self._service.commit(req, timeout_s=t, trace=current_trace()))
        )

    async def Release(self, request: pb.ReleaseRequest, context: Context) -> pb.ReleaseResponse:
        req = convert.release_request(request)
        return convert.release_response(await self._call(context, lambda t: self._service.release(req, timeout_s=t)))

    async def Renew(self, request: pb.RenewRequest, context: Context) -> pb.RenewResponse:
        req = convert.renew_request(request)
        return convert.renew_response(await self._call(context, lambda t: self._service.renew(req, timeout_s=t)))

    async def Inspect(self, request: pb.InspectRequest, context: Context) -> pb.InspectResponse:
        req = convert.record_ref(request)
        return convert.inspect_response(await self._call(context, lambda t: self._service.inspect(req, timeout_s=t)))

    async def Forget(self, request: pb.ForgetRequest, context: Context) -> pb.ForgetResponse:
        req = convert.record_ref(request)
        return convert.forget_response(await self._call(context, lambda t: self._service.forget(req, timeout_s=t)))

    async def CheckBatch(self, request: pb.CheckBatchRequest, context: Context) -> pb.CheckBatchResponse:
        return await self._check_batch(request, self._timeout(context), context)

    async def ClaimBatch(self, request: pb.ClaimBatchRequest, context: Context) -> pb.ClaimBatchResponse:
        return await self._claim_batch(request, self._timeout(context), context)

    async def CommitBatch(self, request: pb.CommitBatchRequest, context: Context) -> pb.CommitBatchResponse:
        return await self._commit_batch(request, self._timeout(context), context)

    # Batch bodies are shared by the unary batch RPCs and Stream (context None: raise instead of abort).

    async def _check_batch(
        self, m: pb.CheckBatchRequest, budget_s: float, context: Context | None
    ) -> pb.CheckBatchResponse:
        reqs = [convert.check_request(item) for item in m.items]
        results = await self._batch(context, self._service.check_batch(reqs, timeout_s=budget_s, trace=current_trace()))
        return pb.CheckBatchResponse(results=_batch_results(results, convert.check_response, pb.CheckResponse))

    async def _claim_batch(
        self, m: pb.ClaimBatchRequest, budget_s: float, context: Context | None
    ) -> pb.ClaimBatchResponse:
        reqs = [convert.claim_request(item) for item in m.items]
        limit = None if context is None else self._wait_limit(context)
        if m.answer_at_once:  # wait_ms is validated, nothing waits (ADR 0018)
            limit = 0.0
        results = await self._batch(
            context, self._service.claim_batch(reqs, timeout_s=budget_s, trace=current_trace(), wait_limit_s=limit)
        )
        return pb.ClaimBatchResponse(results=_batch_results(results, convert.claim_response, pb.ClaimResponse))

    async def _commit_batch(
        self, m: pb.CommitBatchRequest, budget_s: float, context: Context | None
    ) -> pb.CommitBatchResponse:
        reqs = [convert.commit_request(item) for item in m.items]
        results = await self._batch(
            context, self._service.commit_batch(reqs, timeout_s=budget_s, trace=current_trace())
        )
        return pb.CommitBatchResponse(results=_batch_results(results, convert.commit_response, pb.CommitResponse))

    async def _batch(self, context: Context | None, work: Awaitable[T]) -> T:
        if context is None:
            return await work
        return await self._call(context, lambda _timeout: work)

    # -- Stream -----------------------------------------------------------

    async def _stream_check(self, m: pb.CheckRequest, budget_s: float) -> pb.CheckResponse:
        return convert.check_response(
            await self._service.check(convert.check_request(m), timeout_s=budget_s, trace=current_trace())
        )

    async def _stream_claim(self, m: pb.ClaimRequest, budget_s: float) -> pb.ClaimResponse:
        return convert.claim_response(
            await self._service.claim(convert.claim_request(m), timeout_s=budget_s, trace=current_trace())
        )

    async def _stream_commit(self, m: pb.CommitRequest, budget_s: float) -> pb.CommitResponse:
        return convert.commit_response(
            await self._service.commit(convert.commit_request(m), timeout_s=budget_s, trace=current_trace())
        )

    async def _stream_release(self, m: pb.ReleaseRequest, budget_s: float) -> pb.ReleaseResponse:
        return convert.release_response(await self._service.release(convert.release_request(m), timeout_s=budget_s))

    async def _stream_renew(self, m: pb.RenewRequest, budget_s: float) -> pb.RenewResponse:
        return convert.renew_response(await self._service.renew(convert.renew_request(m), timeout_s=budget_s))

    async def _stream_one(self, m: pb.StreamRequest) -> pb.StreamResponse:
        """One stream message, answered like the unary call; errors become `error`."""
        out = pb.StreamResponse(correlation_id=m.correlation_id)
        kind = m.WhichOneof("request")
        try:
            if kind is None:
                raise InvalidArgument([FieldViolation("request", "set one operation")])
            response = await self._stream_handlers[kind](getattr(m, kind), self._default_deadline_s)
            getattr(out, kind).CopyFrom(response)
        except DedupError as err:
            out.error.CopyFrom(to_item_error(err))
        return out

    async def Stream(
        self, request_iterator: AsyncIterator[pb.StreamRequest], context: Context
    ) -> AsyncIterator[pb.StreamResponse]:
        """Up to stream_window requests are in flight or unsent at once: a slot is freed when its
        response was written, so reading pauses for a client that does not read its responses.
        On shutdown the stream stops reading, answers what it read, then ends with UNAVAILABLE."""
        responses: asyncio.Queue[pb.StreamResponse | None] = asyncio.Queue()
        window = asyncio.Semaphore(self._stream_window)
        tasks: set[asyncio.Task[None]] = set()

        async def handle(m: pb.StreamRequest) -> None:
            with self.drain.track():
                responses.put_nowait(await self._stream_one(m))  # unbounded: the window bounds it

        async def read() -> None:
            async for m in request_iterator:
                await window.acquire()
                task = asyncio.create_task(handle(m))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        async def run() -> None:
            reader = asyncio.create_task(read())
            self.drain.add_reader(reader)
            try:
                await reader
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not self.drain.closing or (current is not None and current.cancelling()):
                    raise
            finally:
                if tasks:
                    await asyncio.gather(*tasks)
                await responses.put(None)

        runner = asyncio.create_task(run())
        try:
            while (response := await responses.get()) is not None:
                yield response
                window.release()  # written to the transport: the slot is free
            await runner
            if self.drain.closing:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "the sidecar is shutting down: open a new stream")
        finally:
            runner.cancel()
            for task in tasks:
                task.cancel()
