"""Domain errors to gRPC statuses: the one table."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from dedup.v1 import dedup_pb2
from sidecar.domain.errors import (
    DedupError,
    InvalidArgument,
    NamespaceNotFound,
    PermissionDenied,
    QuotaExceeded,
    StoreError,
    StoreFault,
    StorePermissionError,
    StoreTimeout,
)

# Most specific first.
_TABLE: tuple[tuple[type[DedupError], grpc.StatusCode], ...] = (
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NamespaceNotFound, grpc.StatusCode.NOT_FOUND),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (QuotaExceeded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (StoreTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (StorePermissionError, grpc.StatusCode.FAILED_PRECONDITION),
    (StoreFault, grpc.StatusCode.INTERNAL),
    (StoreError, grpc.StatusCode.UNAVAILABLE),
)


def status_code_of(err: DedupError) -> grpc.StatusCode:
    for kind, code in _TABLE:
        if isinstance(err, kind):
            return code
    return grpc.StatusCode.INTERNAL


def _code_number(code: grpc.StatusCode) -> int:
    number: int = code.value[0]
    return number


def to_grpc_status(err: DedupError) -> grpc.Status:
    """The status for an error, with google.rpc.BadRequest details for bad input."""
    code = status_code_of(err)
    status = status_pb2.Status(code=_code_number(code), message=str(err))
    if isinstance(err, InvalidArgument):
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in err.violations
                ]
            )
        )
        status.details.append(detail)
    return rpc_status.to_status(status)


def to_item_error(err: DedupError) -> dedup_pb2.ItemError:
    """The same decision as a unary call's status, for one batch item or stream message."""
    item = dedup_pb2.ItemError(code=_code_number(status_code_of(err)), message=str(err))
    if isinstance(err, InvalidArgument):
        item.field_violations.extend(
            dedup_pb2.FieldViolation(field=v.field, description=v.description) for v in err.violations
        )
    return item


assert _code_number(grpc.StatusCode.UNAVAILABLE) == code_pb2.UNAVAILABLE
