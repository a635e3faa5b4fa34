"""The stream transport of the sync client: one Stream shared by every thread of a DedupClient.

A caller thread queues its call and waits (up to its deadline) for the answer.
gRPC's request-consuming thread takes everything queued at that moment and
frames it (streaming.Framer: coalesced batches); a reader thread routes the
answers. When the stream breaks, every call in flight or queued fails, and the
next call opens a new stream.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from dedup_client.errors import DedupError, make_error
from dedup_client.streaming import Answer, Framer, Pending, release_request, stream_failure


class _Session:
    """One open Stream: a queue of calls to send, a reader thread for the answers."""

    def __init__(
        self,
        stub: dedup_pb2_grpc.DedupStub,
        metadata: Sequence[tuple[str, str]],
        wait_for_ready: bool,
        on_orphan: Callable[[pb.ClaimRequest, int], None],
        on_refused: Callable[[], None],
    ) -> None:
        self._on_refused = on_refused
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.broken = False
        self._framer = Framer(on_orphan, self._resend)
        self._call: Any = stub.Stream(self._requests(), metadata=tuple(metadata), wait_for_ready=wait_for_ready)
        self._reader = threading.Thread(target=self._read, name="dedup-stream", daemon=True)
        self._reader.start()

    def submit(self, call: Pending) -> bool:
        """Queues `call`; False if this stream is already broken (open another)."""
        with self._lock:
            if self.broken:
                return False
            self._queue.put(call)
            return True

    def _resend(self, calls: list[Pending]) -> None:
        for call in calls:
            if not self.submit(call):
                call.settle(make_error(grpc.StatusCode.UNAVAILABLE, "stream broken"))

    def _requests(self) -> Iterator[pb.StreamRequest]:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            yield from self._framer.frame(c for c in batch if c is not None)
            if None in batch:
                return

    def _read(self) -> None:
        try:
            for response in self._call:
                self._framer.answer(response)
            err = make_error(grpc.StatusCode.UNAVAILABLE, "stream closed by the sidecar")
        except grpc.RpcError as rpc_error:
            code: grpc.StatusCode = self._call.code()
            if code is grpc.StatusCode.UNIMPLEMENTED:  # a sidecar without Stream: use unary calls
                self._on_refused()
            err = stream_failure(code, self._call.details() or str(rpc_error))
        self._break(err)

    def _break(self, err: DedupError) -> None:
        with self._lock:
            self.broken = True
        self._framer.close(err)
        while True:
            try:
                call = self._queue.get_nowait()
            except queue.Empty:
                break
            if call is not None:
                call.settle(err)
        self._queue.put(None)  # ends the request iterator

    def close(self) -> None:
        self._call.cancel()
        self._reader.join(5)


class SyncStream:
    """The client's stream, opened lazily and reopened after a break. Thread-safe.

    The stream carries the client's static `metadata` only, never the caller's trace
    context: one stream serves every trace (use transport="unary" to continue traces per call).
    """

    def __init__(
        self, stub: dedup_pb2_grpc.DedupStub, metadata: Sequence[tuple[str, str]], wait_for_ready: bool
    ) -> None:
        self._stub = stub
        self._metadata = metadata
        self._wait_for_ready = wait_for_ready
        self._lock = threading.Lock()
        self._session: _Session | None = None
        self._closed = False
        self.unimplemented = False

    def call(self, kind: str, request: Any, deadline: float) -> Message:
        """Sends one call and waits for its answer until `deadline` (time.monotonic())."""
        done = threading.Event()
        box: list[Answer] = []

        def deliver(answer: Answer) -> None:
            box.append(answer)
            done.set()

        pending = Pending(kind, request, deliver)
        self._submit(pending)
        if not done.wait(max(0.0, deadline - time.monotonic())):
            if pending.abandon():
                raise make_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded (stream)")
            done.wait()
        answer = box[0]
        if isinstance(answer, DedupError):
            raise answer
        return answer

    def _refused(self) -> None:
        self.unimplemented = True

    def _submit(self, call: Pending) -> None:
        while True:
            with self._lock:
                if self._closed:
                    raise make_error(grpc.StatusCode.UNAVAILABLE, "the client is closed")
                session = self._session
                if session is None or session.broken:
                    session = self._session = _Session(
                        self._stub, self._metadata, self._wait_for_ready, self._release_orphan, self._refused
                    )
            if session.submit(call):
                return

    def _release_orphan(self, claim: pb.ClaimRequest, token: int) -> None:
        """A Claim answered ACQUIRED after its caller gave up: release it (best effort)."""
        with contextlib.suppress(DedupError):  # the lease ends by itself
            self._submit(Pending("release", release_request(claim, token), lambda _answer: None))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            session, self._session = self._session, None
        if session is not None:
            session.close()
