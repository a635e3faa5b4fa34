"""The stream transport's core, shared by the sync and asyncio clients (no I/O here).

Calls waiting to be sent become `StreamRequest`s with fresh correlation ids;
pending calls of the same kind and namespace are coalesced into one batch
message (CheckBatch, ClaimBatch, CommitBatch; up to MAX_COALESCED items), and
every `StreamResponse` is routed back to the calls it answers. Waiting Claims
(wait_ms > 0) are coalesced in two steps (ADR 0018): a ClaimBatch is sent with
answer_at_once (nothing waits; wait_ms is still validated), and an item answered
IN_PROGRESS whose call asked to wait is sent again on its own with the rest of its wait. A batch refused
as a whole (INVALID_ARGUMENT: the sidecar validates every item before running
any) is re-sent as single messages, so each caller gets its own answer.

Each call is a `Pending`, settled exactly once: by its answer, by the stream's
failure, or abandoned by its caller (deadline, cancellation). A late ACQUIRED
for an abandoned Claim is handed to `on_orphan` so the client releases it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import grpc
from google.protobuf.message import Message

from dedup.v1 import dedup_pb2 as pb
from dedup_client.errors import DedupError, FieldViolation, code_from_number, make_error

MAX_COALESCED = 100
MAX_COALESCED_BYTES = 1 << 20  # well under gRPC's default 4 MiB message limit (commit results can be large)
STREAM_KINDS = {"Check": "check", "Claim": "claim", "Commit": "commit", "Release": "release", "Renew": "renew"}
_BATCH_OF = {"check": "check_batch", "claim": "claim_batch", "commit": "commit_batch"}
_INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]

Answer = Message | DedupError


def item_error(err: pb.ItemError) -> DedupError:
    """The error a unary call would have raised, from a stream message's or batch item's ItemError."""
    violations = [FieldViolation(v.field, v.description) for v in err.field_violations]
    return make_error(code_from_number(err.code), err.message, violations)


class Pending:
    """One call on the stream, settled once (answer, failure) or abandoned by its caller."""

    __slots__ = ("_deliver", "_lock", "_state", "alone", "kind", "request", "sent_at")

    def __init__(self, kind: str, request: Any, deliver: Callable[[Answer], None]) -> None:
        self.kind = kind
        self.request = request
        self.alone = False  # never coalesced (its batch was refused as a whole, or it waits on its own)
        self.sent_at = 0.0  # time.monotonic() when it was framed into a batch
        self._deliver = deliver
        self._lock = threading.Lock()
        self._state = "pending"

    @property
    def live(self) -> bool:
        return self._state == "pending"

    @property
    def coalescible(self) -> bool:
        return not self.alone and self.kind in _BATCH_OF

    def settle(self, answer: Answer) -> bool:
        """Delivers `answer` unless the call was settled or abandoned already."""
        with self._lock:
            if self._state != "pending":
                return False
            self._state = "settled"
        self._deliver(answer)
        return True

    def abandon(self) -> bool:
        """The caller gave up (deadline, cancellation); False if the answer came first."""
        with self._lock:
            if self._state != "pending":
                return False
            self._state = "abandoned"
            return True


def _answers(calls: list[Pending], response: pb.StreamResponse) -> list[Answer]:
    kind = calls[0].kind
    which = response.WhichOneof("response")
    if which is None:
        return [make_error(grpc.StatusCode.INTERNAL, "stream answered without a response")] * len(calls)
    if which == "error":
        return [item_error(response.error)] * len(calls)
    if which == kind and len(calls) == 1:
        return [getattr(response, which)]
    if which == _BATCH_OF.get(kind):
        results = list(getattr(response, which).results)
        if len(results) == len(calls):
            return [item_error(r.error) if r.HasField("error") else r for r in results]
    mismatch = make_error(grpc.StatusCode.INTERNAL, f"stream answered {which} to {len(calls)} {kind} call(s)")
    return [mismatch] * len(calls)


def _chunks(group: list[Pending]) -> list[list[Pending]]:
    """Splits a group into messages of at most MAX_COALESCED items and about MAX_COALESCED_BYTES."""
    chunks: list[list[Pending]] = [[]]
    size = 0
    for call in group:
        item = call.request.ByteSize()
        if chunks[-1] and (len(chunks[-1]) == MAX_COALESCED or size + item > MAX_COALESCED_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(call)
        size += item
    return chunks


class Framer:
    """Correlation ids, coalescing and routing for one stream. Thread-safe."""

    def __init__(
        self,
        on_orphan: Callable[[pb.ClaimRequest, int], None],
        resend: Callable[[list[Pending]], None],
    ) -> None:
        self._on_orphan = on_orphan
        self._resend = resend
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._inflight: dict[int, list[Pending]] = {}
        self._closed: DedupError | None = None

    def frame(self, calls: Iterable[Pending]) -> list[pb.StreamRequest]:
        """The messages to send for `calls` (abandoned ones are dropped), registered as in flight."""
        groups: dict[tuple[str, str] | int, list[Pending]] = {}
        for n, call in enumerate(c for c in calls if c.live):
            key = (call.kind, call.request.namespace) if call.coalescible else n
            groups.setdefault(key, []).append(call)
        chunks = [chunk for group in groups.values() for chunk in _chunks(group)]
        messages: list[pb.StreamRequest] = []
        with self._lock:
            closed = self._closed
            if closed is None:
                for chunk in chunks:
                    message = pb.StreamRequest(correlation_id=next(self._ids))
                    kind = chunk[0].kind
                    if len(chunk) == 1:
                        getattr(message, kind).CopyFrom(chunk[0].request)
                    else:
                        items = getattr(message, _BATCH_OF[kind]).items
                        items.extend(c.request for c in chunk)
                        if kind == "claim":  # ADR 0018: a batch never waits; its IN_PROGRESS items wait alone
                            message.claim_batch.answer_at_once = True  # wait_ms still validated
                            now = time.monotonic()
                            for call in chunk:
                                call.sent_at = now
                    self._inflight[message.correlation_id] = chunk
                    messages.append(message)
        if closed is not None:
            for chunk in chunks:
                for call in chunk:
                    call.settle(closed)
        return messages

    def answer(self, response: pb.StreamResponse) -> None:
        """Routes one response to its calls (unknown correlation ids are ignored)."""
        with self._lock:
            calls = self._inflight.pop(response.correlation_id, None)
        if not calls:
            return
        if len(calls) > 1 and response.WhichOneof("response") == "error" and response.error.code == _INVALID_ARGUMENT:
            # The sidecar validates a batch as a whole: one caller's bad input refused the
            # message and ran nothing. Send each call on its own, to get its own answer.
            alone = [call for call in calls if call.live]
            for call in alone:
                call.alone = True
            self._resend(alone)
            return
        answers: list[Answer | None] = list(_answers(calls, response))
        if len(calls) > 1 and calls[0].kind == "claim":
            answers = self._wait_alone(calls, answers)
        for call, answer in zip(calls, answers, strict=True):
            if answer is None:  # sent again on its own, to wait
                continue
            if call.settle(answer):
                continue
            if isinstance(answer, pb.ClaimResponse) and answer.outcome == pb.CLAIM_OUTCOME_ACQUIRED:
                self._on_orphan(call.request, answer.fencing_token)  # abandoned: give the lease back

    def _wait_alone(self, calls: list[Pending], answers: list[Answer | None]) -> list[Answer | None]:
        """Re-sends each waiting Claim its batch answered IN_PROGRESS, alone with the rest of its wait:
        its answer becomes None (in place)."""
        waiting: list[Pending] = []
        now = time.monotonic()
        for n, (call, answer) in enumerate(zip(calls, answers, strict=True)):
            wait_ms = call.request.wait_ms
            if not wait_ms or not call.live or not isinstance(answer, pb.ClaimResponse):
                continue
            if answer.outcome != pb.CLAIM_OUTCOME_IN_PROGRESS:
                continue
            left_ms = wait_ms - int((now - call.sent_at) * 1000)
            if left_ms <= 0:
                continue
            request = pb.ClaimRequest()
            request.CopyFrom(call.request)
            request.wait_ms = left_ms
            call.request = request
            call.alone = True
            waiting.append(call)
            answers[n] = None
        if waiting:
            self._resend(waiting)
        return answers

    def close(self, err: DedupError) -> None:
        """The stream is gone: every call in flight (and any framed later) fails with `err`."""
        with self._lock:
            self._closed = err
            inflight, self._inflight = self._inflight, {}
        for calls in inflight.values():
            for call in calls:
                call.settle(err)

    @property
    def idle(self) -> bool:
        with self._lock:
            return not self._inflight


def stream_failure(code: grpc.StatusCode, details: str) -> DedupError:
    """The error for calls in flight on a broken stream: UNAVAILABLE, unless the stream was refused outright."""
    if code in (
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    ):
        return make_error(code, details)
    return make_error(grpc.StatusCode.UNAVAILABLE, f"stream broken ({code.name}): {details}")


def release_request(claim: pb.ClaimRequest, token: int) -> pb.ReleaseRequest:
    return pb.ReleaseRequest(namespace=claim.namespace, id=claim.id, fencing_token=token)
