"""What the effectively-once helper reports, and what the caller should do with its broker.

The same statuses and actions in every language's client (docs/adr/0013-helper-rules.md).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

from dedup_client.results import ClaimOutcome, ClaimResult

T = TypeVar("T")
U = TypeVar("U")


class Status(enum.Enum):
    PROCESSED = "PROCESSED"  # the handler ran and its commit is recorded: ack
    DUPLICATE = "DUPLICATE"  # processed before (stored_result has its result): ack without processing
    IN_PROGRESS = "IN_PROGRESS"  # another consumer still holds the lease after wait_ms: nack (requeue)
    CONFLICT = "CONFLICT"  # same id, different fingerprint: an upstream bug: dead-letter
    LEASE_LOST = "LEASE_LOST"  # the handler ran, another holder took the id before our commit: ack, and alert


class Action(enum.Enum):
    """What to tell the broker about the message."""

    ACK = "ACK"  # AMQP basic.ack, Kafka commit the offset, SQS delete
    NACK = "NACK"  # AMQP basic.nack(requeue=true), or redeliver after retry_after_ms
    DEAD_LETTER = "DEAD_LETTER"  # AMQP basic.reject(requeue=false) to a dead-letter exchange


_ACTIONS = {
    Status.PROCESSED: Action.ACK,
    Status.DUPLICATE: Action.ACK,
    Status.IN_PROGRESS: Action.NACK,
    Status.CONFLICT: Action.DEAD_LETTER,
    Status.LEASE_LOST: Action.ACK,
}


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """The helper's report for one message.

    value: the handler's return value (PROCESSED, LEASE_LOST).
    stored_result: DUPLICATE: what the first processing stored; PROCESSED: what we stored.
    retry_after_ms: IN_PROGRESS: when the holder's lease ends.
    fencing_token: PROCESSED / LEASE_LOST: the token the handler ran under (after a
    re-claim, the token the commit was recorded with).
    """

    status: Status
    value: T | None = None
    stored_result: bytes | None = None
    retry_after_ms: int = 0
    fencing_token: int = 0

    @property
    def action(self) -> Action:
        """ACK, NACK or DEAD_LETTER: the broker action for this status."""
        return _ACTIONS[self.status]

    @property
    def should_ack(self) -> bool:
        """True when the broker may forget the message (it was processed, by us or before)."""
        return self.action is Action.ACK

    def with_value(self, value: U) -> Outcome[U]:
        return Outcome(self.status, value, self.stored_result, self.retry_after_ms, self.fencing_token)


def not_acquired(claim: ClaimResult) -> Outcome[None]:
    """The report for a claim that did not acquire the lease."""
    match claim.outcome:
        case ClaimOutcome.DUPLICATE:
            return Outcome(Status.DUPLICATE, stored_result=claim.result)
        case ClaimOutcome.IN_PROGRESS:
            return Outcome(Status.IN_PROGRESS, retry_after_ms=claim.retry_after_ms)
        case ClaimOutcome.CONFLICT:
            return Outcome(Status.CONFLICT)
    raise AssertionError(f"unexpected claim outcome {claim.outcome}")


def renew_interval_s(lease_ms: int, renew_every_ms: int | None) -> float:
    """Renew at a third of the lease by default: two renewals may fail before it ends."""
    return (renew_every_ms if renew_every_ms is not None else lease_ms / 3) / 1000
