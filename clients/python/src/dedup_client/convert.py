"""Protobuf <-> results: the only module that knows the generated message types."""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import TypeVar

import grpc

from dedup.v1 import dedup_pb2 as pb
from dedup_client.errors import DedupError, FieldViolation, code_from_number, make_error
from dedup_client.results import (
    CheckItem,
    CheckOutcome,
    CheckResult,
    ClaimItem,
    ClaimOutcome,
    ClaimResult,
    CommitItem,
    CommitOutcome,
    CommitResult,
    ForgetOutcome,
    ForgetResult,
    InspectResult,
    RecordState,
    ReleaseOutcome,
    ReleaseResult,
    RenewOutcome,
    RenewResult,
)

E = TypeVar("E", bound=Enum)


def as_bytes(value: bytes | str | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else bytes(value)


def _enum(kind: type[E], proto_enum: object, number: int, prefix: str) -> E | None:
    if number == 0:
        return None
    name: str = proto_enum.Name(number)  # type: ignore[attr-defined]
    return kind(name.removeprefix(prefix))


def _item_error(response: pb.CheckResponse | pb.ClaimResponse | pb.CommitResponse) -> DedupError | None:
    if not response.HasField("error"):
        return None
    err = response.error
    return make_error(
        code_from_number(err.code), err.message, [FieldViolation(v.field, v.description) for v in err.field_violations]
    )


def _optional_result(response: pb.CheckResponse | pb.ClaimResponse | pb.InspectResponse) -> bytes | None:
    return bytes(response.result) if response.HasField("result") else None


def check_request(namespace: str, id: bytes | str, fingerprint: bytes | str | None, window_ms: int) -> pb.CheckRequest:
    return pb.CheckRequest(namespace=namespace, id=as_bytes(id), fingerprint=as_bytes(fingerprint), window_ms=window_ms)


def claim_request(
    namespace: str, id: bytes | str, fingerprint: bytes | str | None, lease_ms: int, wait_ms: int = 0
) -> pb.ClaimRequest:
    return pb.ClaimRequest(
        namespace=namespace, id=as_bytes(id), fingerprint=as_bytes(fingerprint), lease_ms=lease_ms, wait_ms=wait_ms
    )


def commit_request(
    namespace: str, id: bytes | str, token: int, result: bytes | str | None, window_ms: int
) -> pb.CommitRequest:
    request = pb.CommitRequest(namespace=namespace, id=as_bytes(id), fencing_token=token, window_ms=window_ms)
    if result is not None:
        request.result = as_bytes(result)
    return request


def check_batch_request(
    namespace: str, items: Iterable[bytes | str | CheckItem], window_ms: int
) -> pb.CheckBatchRequest:
    return pb.CheckBatchRequest(
        items=[
            check_request(namespace, it.id, it.fingerprint, it.window_ms or window_ms)
            if isinstance(it, CheckItem)
            else check_request(namespace, it, None, window_ms)
            for it in items
        ]
    )


def claim_batch_request(
    namespace: str, items: Iterable[bytes | str | ClaimItem], lease_ms: int, wait_ms: int = 0
) -> pb.ClaimBatchRequest:
    return pb.ClaimBatchRequest(
        items=[
            claim_request(namespace, it.id, it.fingerprint, it.lease_ms or lease_ms, it.wait_ms or wait_ms)
            if isinstance(it, ClaimItem)
            else claim_request(namespace, it, None, lease_ms, wait_ms)
            for it in items
        ]
    )


def commit_batch_request(namespace: str, items: Iterable[CommitItem], window_ms: int) -> pb.CommitBatchRequest:
    return pb.CommitBatchRequest(
        items=[commit_request(namespace, it.id, it.fencing_token, it.result, it.window_ms or window_ms) for it in items]
    )


def check_result(r: pb.CheckResponse) -> CheckResult:
    return CheckResult(
        outcome=_enum(CheckOutcome, pb.CheckOutcome, r.outcome, "CHECK_OUTCOME_"),
        first_seen_unix_ms=r.first_seen_unix_ms,
        age_ms=r.age_ms,
        state=_enum(RecordState, pb.RecordState, r.state, "RECORD_STATE_"),
        result=_optional_result(r),
        degraded=r.degraded,
        shadow_outcome=_enum(CheckOutcome, pb.CheckOutcome, r.shadow_outcome, "CHECK_OUTCOME_"),
        error=_item_error(r),
    )


def claim_result(r: pb.ClaimResponse) -> ClaimResult:
    return ClaimResult(
        outcome=_enum(ClaimOutcome, pb.ClaimOutcome, r.outcome, "CLAIM_OUTCOME_"),
        fencing_token=r.fencing_token,
        lease_expires_unix_ms=r.lease_expires_unix_ms,
        retry_after_ms=r.retry_after_ms,
        first_seen_unix_ms=r.first_seen_unix_ms,
        age_ms=r.age_ms,
        committed_unix_ms=r.committed_unix_ms,
        result=_optional_result(r),
        degraded=r.degraded,
        shadow_outcome=_enum(ClaimOutcome, pb.ClaimOutcome, r.shadow_outcome, "CLAIM_OUTCOME_"),
        error=_item_error(r),
    )


def commit_result(r: pb.CommitResponse) -> CommitResult:
    return CommitResult(
        outcome=_enum(CommitOutcome, pb.CommitOutcome, r.outcome, "COMMIT_OUTCOME_"),
        committed_unix_ms=r.committed_unix_ms,
        expires_unix_ms=r.expires_unix_ms,
        degraded=r.degraded,
        shadow_outcome=_enum(CommitOutcome, pb.CommitOutcome, r.shadow_outcome, "COMMIT_OUTCOME_"),
        error=_item_error(r),
    )


def _required(value: E | None, what: str) -> E:
    if value is None:
        raise make_error(grpc.StatusCode.INTERNAL, f"sidecar answered {what} without an outcome")
    return value


def release_result(r: pb.ReleaseResponse) -> ReleaseResult:
    outcome = _enum(ReleaseOutcome, pb.ReleaseOutcome, r.outcome, "RELEASE_OUTCOME_")
    return ReleaseResult(_required(outcome, "Release"), degraded=r.degraded)


def renew_result(r: pb.RenewResponse) -> RenewResult:
    outcome = _enum(RenewOutcome, pb.RenewOutcome, r.outcome, "RENEW_OUTCOME_")
    return RenewResult(_required(outcome, "Renew"), r.lease_expires_unix_ms, r.degraded)


def inspect_result(r: pb.InspectResponse) -> InspectResult:
    state = _enum(RecordState, pb.RecordState, r.state, "RECORD_STATE_")
    return InspectResult(
        state=_required(state, "Inspect"),
        fencing_token=r.fencing_token,
        first_seen_unix_ms=r.first_seen_unix_ms,
        committed_unix_ms=r.committed_unix_ms,
        lease_expires_unix_ms=r.lease_expires_unix_ms,
        ttl_ms=r.ttl_ms,
        has_fingerprint=r.has_fingerprint,
        result=_optional_result(r),
        now_unix_ms=r.now_unix_ms,
    )


def forget_result(r: pb.ForgetResponse) -> ForgetResult:
    return ForgetResult(_required(_enum(ForgetOutcome, pb.ForgetOutcome, r.outcome, "FORGET_OUTCOME_"), "Forget"))
