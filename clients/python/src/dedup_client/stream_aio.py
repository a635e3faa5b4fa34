"""The stream transport of the asyncio client: one Stream per AsyncDedupClient.

A writer task takes every call queued at that moment and frames it
(streaming.Framer: coalesced batches); a reader task routes the answers. When
the stream breaks, every call in flight or queued fails, and the next call
opens a new stream. A call's deadline or cancellation abandons it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc.aio import EOF  # type: ignore[attr-defined]

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from dedup_client.errors import DedupError, make_error
from dedup_client.streaming import Answer, Framer, Pending, release_request, stream_failure


class _Session:
    """One open Stream: a queue of calls to send, a writer and a reader task."""

    def __init__(
        self,
        stub: dedup_pb2_grpc.DedupStub,
        metadata: Sequence[tuple[str, str]],
        wait_for_ready: bool,
        on_orphan: Callable[[pb.ClaimRequest, int], None],
        on_refused: Callable[[], None],
    ) -> None:
        self._on_refused = on_refused
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        self.broken = False
        self._framer = Framer(on_orphan, self._resend)
        open_stream: Any = stub.Stream  # called without a request iterator: written with write()
        self._call: Any = open_stream(metadata=tuple(metadata), wait_for_ready=wait_for_ready)
        self._writer = asyncio.create_task(self._write(), name="dedup-stream-writer")
        self._reader = asyncio.create_task(self._read(), name="dedup-stream-reader")

    def submit(self, call: Pending) -> bool:
        if self.broken:
            return False
        self._queue.put_nowait(call)
        return True

    def _resend(self, calls: list[Pending]) -> None:
        for call in calls:
            if not self.submit(call):
                call.settle(make_error(grpc.StatusCode.UNAVAILABLE, "stream broken"))

    async def _write(self) -> None:
        try:
            while True:
                batch = [await self._queue.get()]
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                for message in self._framer.frame(batch):
                    await self._call.write(message)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the call ended (AioRpcError, InvalidStateError ...): the reader says why
            self._break(make_error(grpc.StatusCode.UNAVAILABLE, f"stream broken: {err!r}"))

    async def _read(self) -> None:
        try:
            while (response := await self._call.read()) is not EOF:
                self._framer.answer(response)
            err = make_error(grpc.StatusCode.UNAVAILABLE, "stream closed by the sidecar")
        except grpc.aio.AioRpcError as rpc_error:
            code = rpc_error.code()
            if code is grpc.StatusCode.UNIMPLEMENTED:  # a sidecar without Stream: use unary calls
                self._on_refused()
            err = stream_failure(code, rpc_error.details() or "")
        except asyncio.CancelledError:
            self._break(make_error(grpc.StatusCode.UNAVAILABLE, "the client is closed"))
            raise
        except Exception as other:  # e.g. InvalidStateError once the call was cancelled
            err = make_error(grpc.StatusCode.UNAVAILABLE, f"stream broken: {other!r}")
        self._break(err)

    def _break(self, err: DedupError) -> None:
        if self.broken:
            return
        self.broken = True
        self._framer.close(err)
        while not self._queue.empty():
            self._queue.get_nowait().settle(err)
        self._writer.cancel()
        self._call.cancel()

    async def close(self) -> None:
        self._call.cancel()
        for task in (self._writer, self._reader):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class AioStream:
    """The client's stream, opened lazily (inside the running loop) and reopened after a break.

    It carries the client's static `metadata` only (see stream_sync.SyncStream).
    """

    def __init__(
        self, stub: dedup_pb2_grpc.DedupStub, metadata: Sequence[tuple[str, str]], wait_for_ready: bool
    ) -> None:
        self._stub = stub
        self._metadata = metadata
        self._wait_for_ready = wait_for_ready
        self._session: _Session | None = None
        self._closed = False
        self.unimplemented = False

    async def call(self, kind: str, request: Any, deadline: float) -> Message:
        """Sends one call and awaits its answer until `deadline` (time.monotonic())."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

        def deliver(answer: Answer) -> None:
            if not future.done():
                future.set_result(answer)

        pending = Pending(kind, request, deliver)
        self._submit(pending)
        try:
            answer = await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            if pending.abandon():
                raise make_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded (stream)") from None
            answer = future.result()
        except asyncio.CancelledError:
            pending.abandon()
            raise
        if isinstance(answer, DedupError):
            raise answer
        return answer

    def _submit(self, call: Pending) -> None:
        while True:
            if self._closed:
                raise make_error(grpc.StatusCode.UNAVAILABLE, "the client is closed")
            session = self._session
            if session is None or session.broken:  # a broken session's tasks end by themselves
                session = self._session = _Session(
                    self._stub, self._metadata, self._wait_for_ready, self._release_orphan, self._refused
                )
            if session.submit(call):
                return

    def _refused(self) -> None:
        self.unimplemented = True

    def _release_orphan(self, claim: pb.ClaimRequest, token: int) -> None:
        """A Claim answered ACQUIRED after its caller gave up: release it (best effort)."""
        with contextlib.suppress(DedupError):
            self._submit(Pending("release", release_request(claim, token), lambda _answer: None))

    async def close(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()
