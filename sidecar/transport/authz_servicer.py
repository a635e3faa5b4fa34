"""The Dedup servicer behind an authorisation check: identity in transport, decision in the domain.

Every denial is one audit log line (logger `dedup.audit`) with the caller's identities, the
operation, the namespace and the reason; the caller gets PERMISSION_DENIED and nothing else.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from dedup.v1 import dedup_pb2 as pb
from sidecar.domain.authz import AccessRules, Caller
from sidecar.domain.errors import DedupError, PermissionDenied
from sidecar.domain.policy import NAMESPACE_PATTERN
from sidecar.service import DedupService, PolicySource
from sidecar.transport.identity import TokenDirectory, caller_of
from sidecar.transport.servicer import Context, DedupServicer
from sidecar.transport.status import to_grpc_status, to_item_error

audit = logging.getLogger("dedup.audit")

_stream_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("dedup_stream_caller")


def _namespaces(request: Any) -> Iterable[str]:
    items = getattr(request, "items", None)
    if items is not None:
        return sorted({item.namespace for item in items})
    return [request.namespace]


class AuthorizingServicer(DedupServicer):
    def __init__(
        self,
        service: DedupService,
        default_deadline_s: float,
        policies: PolicySource,
        rules: AccessRules,
        tokens: TokenDirectory | None,
    ) -> None:
        super().__init__(service, default_deadline_s)
        self._policies = policies
        self._rules = rules
        self._tokens = tokens

    def _authorize(self, caller: Caller, operation: str, request: Any) -> None:
        policies = self._policies.current()
        for namespace in _namespaces(request):
            denial = self._rules.decide(caller, operation, namespace, policies)
            if denial is not None:
                audit.warning(
                    "permission denied",
                    extra={
                        "identity": str(caller),
                        "operation": operation,
                        "namespace": namespace if NAMESPACE_PATTERN.match(namespace) else "<invalid>",
                        "reason": denial.reason,
                    },
                )
                raise PermissionDenied()

    async def _guard(self, context: Context, operation: str, request: Any) -> None:
        try:
            self._authorize(caller_of(context, self._tokens), operation, request)
        except DedupError as err:
            status = to_grpc_status(err)
            await context.abort(status.code, status.details, status.trailing_metadata)

    async def Check(self, request: pb.CheckRequest, context: Context) -> pb.CheckResponse:
        await self._guard(context, "check", request)
        return await super().Check(request, context)

    async def Claim(self, request: pb.ClaimRequest, context: Context) -> pb.ClaimResponse:
        await self._guard(context, "claim", request)
        return await super().Claim(request, context)

    async def Commit(self, request: pb.CommitRequest, context: Context) -> pb.CommitResponse:
        await self._guard(context, "commit", request)
        return await super().Commit(request, context)

    async def Release(self, request: pb.ReleaseRequest, context: Context) -> pb.ReleaseResponse:
        await self._guard(context, "release", request)
        return await super().Release(request, context)

    async def Renew(self, request: pb.RenewRequest, context: Context) -> pb.RenewResponse:
        await self._guard(context, "renew", request)
        return await super().Renew(request, context)

    async def Inspect(self, request: pb.InspectRequest, context: Context) -> pb.InspectResponse:
        await self._guard(context, "inspect", request)
        return await super().Inspect(request, context)

    async def Forget(self, request: pb.ForgetRequest, context: Context) -> pb.ForgetResponse:
        await self._guard(context, "forget", request)
        return await super().Forget(request, context)

    async def CheckBatch(self, request: pb.CheckBatchRequest, context: Context) -> pb.CheckBatchResponse:
        await self._guard(context, "check", request)
        return await super().CheckBatch(request, context)

    async def ClaimBatch(self, request: pb.ClaimBatchRequest, context: Context) -> pb.ClaimBatchResponse:
        await self._guard(context, "claim", request)
        return await super().ClaimBatch(request, context)

    async def CommitBatch(self, request: pb.CommitBatchRequest, context: Context) -> pb.CommitBatchResponse:
        await self._guard(context, "commit", request)
        return await super().CommitBatch(request, context)

    async def _stream_one(self, m: pb.StreamRequest) -> pb.StreamResponse:
        kind = m.WhichOneof("request")
        if kind is not None:
            try:
                self._authorize(_stream_caller.get(Caller()), kind.removesuffix("_batch"), getattr(m, kind))
            except PermissionDenied as err:
                out = pb.StreamResponse(correlation_id=m.correlation_id)
                out.error.CopyFrom(to_item_error(err))
                return out
        return await super()._stream_one(m)

    async def Stream(
        self, request_iterator: AsyncIterator[pb.StreamRequest], context: Context
    ) -> AsyncIterator[pb.StreamResponse]:
        _stream_caller.set(caller_of(context, self._tokens))
        async for response in super().Stream(request_iterator, context):
            yield response
