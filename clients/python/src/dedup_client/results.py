"""Outcomes and results of every verb, as plain typed values (no protobuf in the caller's code)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dedup_client.errors import DedupError


class CheckOutcome(enum.Enum):
    NEW = "NEW"
    DUPLICATE = "DUPLICATE"
    CONFLICT = "CONFLICT"


class ClaimOutcome(enum.Enum):
    ACQUIRED = "ACQUIRED"
    IN_PROGRESS = "IN_PROGRESS"
    DUPLICATE = "DUPLICATE"
    CONFLICT = "CONFLICT"


class CommitOutcome(enum.Enum):
    COMMITTED = "COMMITTED"
    LEASE_LOST = "LEASE_LOST"


class ReleaseOutcome(enum.Enum):
    RELEASED = "RELEASED"
    LEASE_LOST = "LEASE_LOST"


class RenewOutcome(enum.Enum):
    RENEWED = "RENEWED"
    LEASE_LOST = "LEASE_LOST"


class ForgetOutcome(enum.Enum):
    FORGOTTEN = "FORGOTTEN"
    ABSENT = "ABSENT"


class RecordState(enum.Enum):
    ABSENT = "ABSENT"
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """`outcome` is None only for a failed batch item; then `error` says why."""

    outcome: CheckOutcome | None
    first_seen_unix_ms: int = 0
    age_ms: int = 0
    state: RecordState | None = None
    result: bytes | None = None
    degraded: bool = False
    shadow_outcome: CheckOutcome | None = None
    error: DedupError | None = None


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """ACQUIRED carries `fencing_token`; IN_PROGRESS `retry_after_ms`; DUPLICATE `result`."""

    outcome: ClaimOutcome | None
    fencing_token: int = 0
    lease_expires_unix_ms: int = 0
    retry_after_ms: int = 0
    first_seen_unix_ms: int = 0
    age_ms: int = 0
    committed_unix_ms: int = 0
    result: bytes | None = None
    degraded: bool = False
    shadow_outcome: ClaimOutcome | None = None
    error: DedupError | None = None

    @property
    def acquired(self) -> bool:
        return self.outcome is ClaimOutcome.ACQUIRED


@dataclass(frozen=True, slots=True)
class CommitResult:
    outcome: CommitOutcome | None
    committed_unix_ms: int = 0
    expires_unix_ms: int = 0
    degraded: bool = False
    shadow_outcome: CommitOutcome | None = None
    error: DedupError | None = None


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    outcome: ReleaseOutcome
    degraded: bool = False


@dataclass(frozen=True, slots=True)
class RenewResult:
    outcome: RenewOutcome
    lease_expires_unix_ms: int = 0
    degraded: bool = False


@dataclass(frozen=True, slots=True)
class InspectResult:
    state: RecordState
    fencing_token: int = 0
    first_seen_unix_ms: int = 0
    committed_unix_ms: int = 0
    lease_expires_unix_ms: int = 0
    ttl_ms: int = 0
    has_fingerprint: bool = False
    result: bytes | None = None
    now_unix_ms: int = 0


@dataclass(frozen=True, slots=True)
class ForgetResult:
    outcome: ForgetOutcome


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One item of check_batch; a bare id (str or bytes) is also accepted there."""

    id: bytes | str
    fingerprint: bytes | str | None = None
    window_ms: int = 0


@dataclass(frozen=True, slots=True)
class ClaimItem:
    """One item of claim_batch; a bare id (str or bytes) is also accepted there."""

    id: bytes | str
    fingerprint: bytes | str | None = None
    lease_ms: int = 0
    wait_ms: int = 0


@dataclass(frozen=True, slots=True)
class CommitItem:
    """One item of commit_batch."""

    id: bytes | str
    fencing_token: int
    result: bytes | str | None = None
    window_ms: int = 0
