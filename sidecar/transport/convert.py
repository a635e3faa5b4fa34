"""Proto messages <-> domain requests and decisions.

Domain enums use the proto enums' numbers (NEW = 1 = CHECK_OUTCOME_NEW), so
outcomes convert by value; tests/unit/test_convert.py keeps the two in step.
"""

from __future__ import annotations

from dedup.v1 import dedup_pb2 as pb
from sidecar.domain import requests as rq
from sidecar.domain.outcomes import (
    CheckDecision,
    ClaimDecision,
    CommitDecision,
    ForgetOutcome,
    Inspection,
    ReleaseDecision,
    RenewDecision,
)


def check_request(m: pb.CheckRequest) -> rq.CheckRequest:
    return rq.CheckRequest(m.namespace, m.id, m.fingerprint, m.window_ms)


def claim_request(m: pb.ClaimRequest) -> rq.ClaimRequest:
    return rq.ClaimRequest(m.namespace, m.id, m.fingerprint, m.lease_ms, m.wait_ms)


def commit_request(m: pb.CommitRequest) -> rq.CommitRequest:
    result = m.result if m.HasField("result") else None
    return rq.CommitRequest(m.namespace, m.id, m.fencing_token, result, m.window_ms)


def release_request(m: pb.ReleaseRequest) -> rq.ReleaseRequest:
    return rq.ReleaseRequest(m.namespace, m.id, m.fencing_token)


def renew_request(m: pb.RenewRequest) -> rq.RenewRequest:
    return rq.RenewRequest(m.namespace, m.id, m.fencing_token, m.lease_ms)


def record_ref(m: pb.InspectRequest | pb.ForgetRequest) -> rq.RecordRef:
    return rq.RecordRef(m.namespace, m.id)


def check_response(d: CheckDecision) -> pb.CheckResponse:
    # Runs once per batch item: only non-default fields are passed (half the cost of passing all),
    # and `_value_` is Enum's plain attribute behind the slower `value` property.
    m = pb.CheckResponse(
        outcome=d.outcome._value_,  # type: ignore[arg-type]
        first_seen_unix_ms=d.first_seen_ms,
        age_ms=d.age_ms,
        state=d.state._value_,  # type: ignore[arg-type]
    )
    if d.result is not None:
        m.result = d.result
    if d.degraded:
        m.degraded = True
    if d.shadow_outcome is not None:
        m.shadow_outcome = d.shadow_outcome._value_  # type: ignore[assignment]
    return m


def claim_response(d: ClaimDecision) -> pb.ClaimResponse:
    return pb.ClaimResponse(
        outcome=d.outcome.value,  # type: ignore[arg-type]
        fencing_token=d.fencing_token,
        lease_expires_unix_ms=d.lease_expires_ms,
        retry_after_ms=d.retry_after_ms,
        first_seen_unix_ms=d.first_seen_ms,
        age_ms=d.age_ms,
        committed_unix_ms=d.committed_ms,
        result=d.result,
        degraded=d.degraded,
        shadow_outcome=d.shadow_outcome.value if d.shadow_outcome else 0,  # type: ignore[arg-type]
    )


def commit_response(d: CommitDecision) -> pb.CommitResponse:
    return pb.CommitResponse(
        outcome=d.outcome.value,  # type: ignore[arg-type]
        committed_unix_ms=d.committed_ms,
        expires_unix_ms=d.expires_ms,
        degraded=d.degraded,
        shadow_outcome=d.shadow_outcome.value if d.shadow_outcome else 0,  # type: ignore[arg-type]
    )


def release_response(d: ReleaseDecision) -> pb.ReleaseResponse:
    return pb.ReleaseResponse(
        outcome=d.outcome.value,  # type: ignore[arg-type]
        degraded=d.degraded,
        shadow_outcome=d.shadow_outcome.value if d.shadow_outcome else 0,  # type: ignore[arg-type]
    )


def renew_response(d: RenewDecision) -> pb.RenewResponse:
    return pb.RenewResponse(
        outcome=d.outcome.value,  # type: ignore[arg-type]
        lease_expires_unix_ms=d.lease_expires_ms,
        degraded=d.degraded,
        shadow_outcome=d.shadow_outcome.value if d.shadow_outcome else 0,  # type: ignore[arg-type]
    )


def inspect_response(i: Inspection) -> pb.InspectResponse:
    return pb.InspectResponse(
        state=i.state.value,  # type: ignore[arg-type]
        fencing_token=i.fencing_token,
        first_seen_unix_ms=i.first_seen_ms,
        committed_unix_ms=i.committed_ms,
        lease_expires_unix_ms=i.lease_expires_ms,
        ttl_ms=i.ttl_ms,
        has_fingerprint=i.has_fingerprint,
        result=i.result,
        now_unix_ms=i.now_ms,
    )


def forget_response(o: ForgetOutcome) -> pb.ForgetResponse:
    return pb.ForgetResponse(outcome=o.value)  # type: ignore[arg-type]
