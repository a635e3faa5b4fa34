"""The asyncio client: the same verbs and rules as DedupClient, awaitable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import grpc

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from dedup_client import convert
from dedup_client.channel import CHANNEL_OPTIONS, normalize_target
from dedup_client.client import DEFAULT_TIMEOUT_S, Transport, goes_unary
from dedup_client.errors import DedupError, from_rpc_error
from dedup_client.results import (
    CheckItem,
    CheckResult,
    ClaimItem,
    ClaimResult,
    CommitItem,
    CommitResult,
    ForgetResult,
    InspectResult,
    ReleaseResult,
    RenewResult,
)
from dedup_client.retry import RetryPolicy
from dedup_client.stream_aio import AioStream
from dedup_client.streaming import STREAM_KINDS
from dedup_client.tracing import trace_metadata

R = TypeVar("R")


class AsyncDedupClient:
    """An asyncio client of one sidecar; create it inside the running event loop, and
    `await client.close()` (or use `async with`) when done.

    target: `host:port` or `unix:/path/to.sock`. Every call has a deadline:
    `timeout=` seconds, else `default_timeout`. Failures raise DedupError
    subclasses; see dedup_client.retry for which calls are retried.
    `wait_for_ready=True` makes calls wait (until their deadline) for a sidecar
    that is not reachable yet instead of failing fast with UNAVAILABLE.
    """

    def __init__(
        self,
        target: str,
        *,
        default_timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        wait_for_ready: bool = False,
        options: Sequence[tuple[str, Any]] = (),
        transport: Transport = "stream",
    ) -> None:
        if transport not in ("stream", "unary"):
            raise ValueError(f"transport must be 'stream' or 'unary', not {transport!r}")
        target = normalize_target(target)
        all_options = [*CHANNEL_OPTIONS, *options]
        self._channel = (
            grpc.aio.secure_channel(target, credentials, all_options)
            if credentials is not None
            else grpc.aio.insecure_channel(target, all_options)
        )
        self._stub = dedup_pb2_grpc.DedupStub(self._channel)
        self._default_timeout = default_timeout
        self._retry = retry or RetryPolicy()
        self._metadata = tuple(metadata)
        self._wait_for_ready = wait_for_ready
        self._stream = AioStream(self._stub, self._metadata, wait_for_ready) if transport == "stream" else None

    @property
    def transport(self) -> Transport:
        """ "stream" (the default), or "unary" when turned off or the sidecar has no Stream."""
        return "stream" if self._stream is not None and not self._stream.unimplemented else "unary"

    @property
    def default_timeout(self) -> float:
        """Seconds of deadline for calls made without `timeout=`."""
        return self._default_timeout

    async def __aenter__(self) -> AsyncDedupClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._stream is not None:
            await self._stream.close()
        await self._channel.close(None)

    def _call_metadata(self) -> list[tuple[str, str]]:
        return [*self._metadata, *trace_metadata()]

    async def _call(self, method: str, request: Any, timeout: float | None, convert_response: Callable[[Any], R]) -> R:
        deadline = time.monotonic() + (self._default_timeout if timeout is None else timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._attempt(method, request, deadline)
            except DedupError as err:
                wait = self._retry.delay(method, err.code, attempt, deadline - time.monotonic())
                if wait is None:
                    raise
                await asyncio.sleep(wait)  # backoff between attempts
                continue
            return convert_response(response)

    async def _attempt(self, method: str, request: Any, deadline: float) -> Any:
        """One try: over the stream for its verbs (unless off or refused), else a unary call."""
        kind = STREAM_KINDS.get(method)
        stream = self._stream
        if kind and stream and not stream.unimplemented and not goes_unary(method, request, deadline):
            try:
                return await stream.call(kind, request, deadline)
            except DedupError as err:
                if err.code is not grpc.StatusCode.UNIMPLEMENTED:
                    raise
                # no Stream on this sidecar (or not for this verb): this call goes unary
        try:
            return await getattr(self._stub, method)(
                request,
                timeout=max(deadline - time.monotonic(), 0.0),
                metadata=self._call_metadata(),
                wait_for_ready=self._wait_for_ready,
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    async def check(
        self,
        namespace: str,
        id: bytes | str,
        *,
        fingerprint: bytes | str | None = None,
        window_ms: int = 0,
        timeout: float | None = None,
    ) -> CheckResult:
        """Marks `id` on first sight: NEW, DUPLICATE or CONFLICT. Never retried (see retry.py)."""
        request = convert.check_request(namespace, id, fingerprint, window_ms)
        return await self._call("Check", request, timeout, convert.check_result)

    async def claim(
        self,
        namespace: str,
        id: bytes | str,
        *,
        fingerprint: bytes | str | None = None,
        lease_ms: int = 0,
        wait_ms: int = 0,
        timeout: float | None = None,
    ) -> ClaimResult:
        """Takes a lease: ACQUIRED (+ fencing_token), IN_PROGRESS, DUPLICATE (+ result) or CONFLICT.

        wait_ms > 0: if another holder's lease is live, wait up to wait_ms (ending 100 ms
        before the deadline) for its Commit (-> DUPLICATE), Release or lost lease (-> ACQUIRED).
        """
        request = convert.claim_request(namespace, id, fingerprint, lease_ms, wait_ms)
        return await self._call("Claim", request, timeout, convert.claim_result)

    async def commit(
        self,
        namespace: str,
        id: bytes | str,
        token: int,
        *,
        result: bytes | str | None = None,
        window_ms: int = 0,
        timeout: float | None = None,
    ) -> CommitResult:
        """Marks a claimed id DONE, optionally storing `result` for later duplicates."""
        request = convert.commit_request(namespace, id, token, result, window_ms)
        return await self._call("Commit", request, timeout, convert.commit_result)

    async def release(
        self, namespace: str, id: bytes | str, token: int, *, timeout: float | None = None
    ) -> ReleaseResult:
        """Drops the lease after failed processing, so a redelivery can proceed at once."""
        request = pb.ReleaseRequest(namespace=namespace, id=convert.as_bytes(id), fencing_token=token)
        return await self._call("Release", request, timeout, convert.release_result)

    async def renew(
        self, namespace: str, id: bytes | str, token: int, *, lease_ms: int = 0, timeout: float | None = None
    ) -> RenewResult:
        """Extends a live lease (heartbeat)."""
        request = pb.RenewRequest(namespace=namespace, id=convert.as_bytes(id), fencing_token=token, lease_ms=lease_ms)
        return await self._call("Renew", request, timeout, convert.renew_result)

    async def inspect(self, namespace: str, id: bytes | str, *, timeout: float | None = None) -> InspectResult:
        """Reads the record without changing it."""
        request = pb.InspectRequest(namespace=namespace, id=convert.as_bytes(id))
        return await self._call("Inspect", request, timeout, convert.inspect_result)

    async def forget(self, namespace: str, id: bytes | str, *, timeout: float | None = None) -> ForgetResult:
        """Admin: deletes the record so the id is new again. Never retried."""
        request = pb.ForgetRequest(namespace=namespace, id=convert.as_bytes(id))
        return await self._call("Forget", request, timeout, convert.forget_result)

    async def check_batch(
        self,
        namespace: str,
        items: Iterable[bytes | str | CheckItem],
        *,
        window_ms: int = 0,
        timeout: float | None = None,
    ) -> list[CheckResult]:
        """Check for many ids in one call; one result per item, in order (failed items carry `.error`)."""
        request = convert.check_batch_request(namespace, items, window_ms)
        return await self._call("CheckBatch", request, timeout, lambda r: [convert.check_result(x) for x in r.results])

    async def claim_batch(
        self,
        namespace: str,
        items: Iterable[bytes | str | ClaimItem],
        *,
        lease_ms: int = 0,
        wait_ms: int = 0,
        timeout: float | None = None,
    ) -> list[ClaimResult]:
        """Claim for many ids in one call; one result per item, in order (wait_ms: per item, as claim)."""
        request = convert.claim_batch_request(namespace, items, lease_ms, wait_ms)
        return await self._call("ClaimBatch", request, timeout, lambda r: [convert.claim_result(x) for x in r.results])

    async def commit_batch(
        self, namespace: str, items: Iterable[CommitItem], *, window_ms: int = 0, timeout: float | None = None
    ) -> list[CommitResult]:
        """Commit for many claimed ids in one call; one result per item, in order."""
        request = convert.commit_batch_request(namespace, items, window_ms)
        return await self._call(
            "CommitBatch", request, timeout, lambda r: [convert.commit_result(x) for x in r.results]
        )
