"""Failed calls raise DedupError (one subclass per status code a caller acts on).

Bad input carries the server's google.rpc.BadRequest field violations, so a
caller can tell *which* field was wrong (`err.field_violations[0].field`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class DedupError(Exception):
    """A call (or, in a batch, one item) failed with a gRPC status."""

    def __init__(self, code: grpc.StatusCode, message: str, field_violations: Sequence[FieldViolation] = ()) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.field_violations = tuple(field_violations)


class InvalidArgumentError(DedupError):
    """Bad input (see field_violations). Retrying the same request fails the same way."""


class NotFoundError(DedupError):
    """Unknown namespace and no `default` policy."""


class UnavailableError(DedupError):
    """The sidecar (or its store) could not be reached. The request may or may not have taken effect."""


class DeadlineExceededError(DedupError):
    """The deadline passed. The request may or may not have taken effect."""


class PermissionDeniedError(DedupError):
    """This client's identity may not use the namespace."""


class UnauthenticatedError(DedupError):
    """No or bad credentials."""


class ResourceExhaustedError(DedupError):
    """The request message is too large."""


class LeaseLostError(DedupError):
    """The lease is gone (it ended, or another holder took the id): raised by `Lease.ensure()`.

    Not a failed RPC: the sidecar answered LEASE_LOST. Its code is ABORTED
    (gRPC's "concurrency conflict, retry at a higher level").
    """

    def __init__(self, message: str = "the lease is lost") -> None:
        super().__init__(grpc.StatusCode.ABORTED, message)


_BY_CODE: dict[grpc.StatusCode, type[DedupError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def make_error(code: grpc.StatusCode, message: str, violations: Sequence[FieldViolation] = ()) -> DedupError:
    return _BY_CODE.get(code, DedupError)(code, message, violations)


def code_from_number(number: int) -> grpc.StatusCode:
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def _violations(trailing: Any) -> list[FieldViolation]:
    for key, value in trailing or ():
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        found: list[FieldViolation] = []
        for detail in status.details:
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad):
                found.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
        return found
    return []


def from_rpc_error(err: grpc.RpcError) -> DedupError:
    """The DedupError for a failed sync or asyncio call."""
    call: Any = err  # a grpc.Call (sync) or grpc.aio.AioRpcError: both have these
    code: grpc.StatusCode = call.code()
    details: str = call.details() or ""
    try:
        trailing = call.trailing_metadata()
    except Exception:
        trailing = None
    return make_error(code, details, _violations(trailing))
