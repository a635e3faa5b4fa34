"""Outcomes and the decisions the store returns, one dataclass per operation."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class RecordState(Enum):
    ABSENT = 1
    IN_PROGRESS = 2
    DONE = 3


class CheckOutcome(Enum):
    NEW = 1
    DUPLICATE = 2
    CONFLICT = 3


class ClaimOutcome(Enum):
    ACQUIRED = 1
    IN_PROGRESS = 2
    DUPLICATE = 3
    CONFLICT = 4


class CommitOutcome(Enum):
    COMMITTED = 1
    LEASE_LOST = 2


class ReleaseOutcome(Enum):
    RELEASED = 1
    LEASE_LOST = 2


class RenewOutcome(Enum):
    RENEWED = 1
    LEASE_LOST = 2


class ForgetOutcome(Enum):
    FORGOTTEN = 1
    ABSENT = 2


@dataclass(frozen=True, slots=True)
class CheckDecision:
    outcome: CheckOutcome
    first_seen_ms: int = 0
    age_ms: int = 0
    state: RecordState = RecordState.DONE
    result: bytes | None = None
    trace_context: bytes = b""
    degraded: bool = False
    shadow_outcome: CheckOutcome | None = None


@dataclass(frozen=True, slots=True)
class ClaimDecision:
    outcome: ClaimOutcome
    fencing_token: int = 0
    lease_expires_ms: int = 0
    retry_after_ms: int = 0
    first_seen_ms: int = 0
    age_ms: int = 0
    committed_ms: int = 0
    result: bytes | None = None
    trace_context: bytes = b""
    degraded: bool = False
    shadow_outcome: ClaimOutcome | None = None


@dataclass(frozen=True, slots=True)
class CommitDecision:
    outcome: CommitOutcome
    committed_ms: int = 0
    expires_ms: int = 0
    degraded: bool = False
    shadow_outcome: CommitOutcome | None = None


@dataclass(frozen=True, slots=True)
class ReleaseDecision:
    outcome: ReleaseOutcome
    degraded: bool = False
    shadow_outcome: ReleaseOutcome | None = None


@dataclass(frozen=True, slots=True)
class RenewDecision:
    outcome: RenewOutcome
    lease_expires_ms: int = 0
    degraded: bool = False
    shadow_outcome: RenewOutcome | None = None


@dataclass(frozen=True, slots=True)
class Inspection:
    state: RecordState
    fencing_token: int = 0
    first_seen_ms: int = 0
    committed_ms: int = 0
    lease_expires_ms: int = 0
    ttl_ms: int = 0
    has_fingerprint: bool = False
    result: bytes | None = None
    now_ms: int = 0


Decision = CheckDecision | ClaimDecision | CommitDecision | ReleaseDecision | RenewDecision


def as_shadow(decision: Decision) -> Decision:
    """What a `shadow` namespace answers: the permissive outcome, with the real one attached."""
    match decision:
        case CheckDecision():
            return replace(decision, outcome=CheckOutcome.NEW, shadow_outcome=decision.outcome)
        case ClaimDecision():
            return replace(decision, outcome=ClaimOutcome.ACQUIRED, shadow_outcome=decision.outcome)
        case CommitDecision():
            return replace(decision, outcome=CommitOutcome.COMMITTED, shadow_outcome=decision.outcome)
        case ReleaseDecision():
            return replace(decision, outcome=ReleaseOutcome.RELEASED, shadow_outcome=decision.outcome)
        case RenewDecision():
            return replace(decision, outcome=RenewOutcome.RENEWED, shadow_outcome=decision.outcome)
