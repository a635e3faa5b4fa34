"""What the effectively-once helper reports, and what the caller should do with its broker."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

from dedup_client.results import ClaimOutcome, ClaimResult, CommitOutcome

T = TypeVar("T")


class Status(enum.Enum):
    PROCESSED = "PROCESSED"  # the handler ran and its commit was accepted: ack
    DUPLICATE = "DUPLICATE"  # processed before (stored_result has its result): ack without processing
    IN_PROGRESS = "IN_PROGRESS"  # another consumer holds the lease: nack / retry after retry_after_ms
    CONFLICT = "CONFLICT"  # same id, different fingerprint: an upstream bug: dead-letter
    LEASE_LOST = "LEASE_LOST"  # the handler ran but the lease ended first: ack, and alert (see docs)


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """The helper's report for one message.

    value: the handler's return value (PROCESSED, LEASE_LOST).
    stored_result: DUPLICATE: what the first processing stored; PROCESSED: what we stored.
    """

    status: Status
    value: T | None = None
    stored_result: bytes | None = None
    retry_after_ms: int = 0
    fencing_token: int = 0

    @property
    def should_ack(self) -> bool:
        """True when the broker may forget the message (it was processed, by us or before)."""
        return self.status in (Status.PROCESSED, Status.DUPLICATE, Status.LEASE_LOST)


def not_acquired(claim: ClaimResult) -> Outcome[T]:
    """The report for a claim that did not acquire the lease."""
    match claim.outcome:
        case ClaimOutcome.DUPLICATE:
            return Outcome(Status.DUPLICATE, stored_result=claim.result)
        case ClaimOutcome.IN_PROGRESS:
            return Outcome(Status.IN_PROGRESS, retry_after_ms=claim.retry_after_ms)
        case ClaimOutcome.CONFLICT:
            return Outcome(Status.CONFLICT)
    raise AssertionError(f"unexpected claim outcome {claim.outcome}")


def after_commit(commit: CommitOutcome | None, value: T, stored: bytes | None, token: int) -> Outcome[T]:
    status = Status.PROCESSED if commit is CommitOutcome.COMMITTED else Status.LEASE_LOST
    return Outcome(status, value=value, stored_result=stored, fencing_token=token)


def renew_interval_s(lease_ms: int, renew_every_ms: int | None) -> float:
    """Renew at a third of the lease by default: two renewals may fail before it ends."""
    return (renew_every_ms if renew_every_ms is not None else lease_ms / 3) / 1000
