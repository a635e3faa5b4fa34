"""The store port: what the service needs from a store, in domain terms.

The Redis adapter (sidecar/redis_store) implements it with Lua scripts; the
scripts are the state machine. Every method takes a batch; a result list holds
one entry per item, in order: a decision, or the StoreError for that item
(Cluster batches can fail in part). A failure of the whole call raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeVar

from sidecar.domain.errors import StoreError
from sidecar.domain.outcomes import (
    CheckDecision,
    ClaimDecision,
    CommitDecision,
    ForgetOutcome,
    Inspection,
    ReleaseDecision,
    RenewDecision,
)

T = TypeVar("T")
ItemResults = list[T | StoreError]


@dataclass(frozen=True, slots=True)
class ReplicaAcks:
    """A write counts only once `replicas` replicas confirmed it within `timeout_ms` (0: no wait)."""

    replicas: int = 0
    timeout_ms: int = 0


NO_ACKS = ReplicaAcks()


@dataclass(frozen=True, slots=True)
class Quota:
    """At most `limit` new records per `period_ms` (a fixed window) counted in the counter `key`.

    Only writes that create a record count (a NEW Check, an ACQUIRED Claim of an absent id); the
    count and the write happen in the same script call (ADR 0051).
    """

    key: str
    limit: int
    period_ms: int


def strictest(acks: Sequence[ReplicaAcks]) -> ReplicaAcks:
    """The one requirement a group of items shares: the most replicas, the longest timeout."""
    return ReplicaAcks(max((a.replicas for a in acks), default=0), max((a.timeout_ms for a in acks), default=0))


class CheckItem(NamedTuple):
    """One Check for the store. A NamedTuple rather than a frozen dataclass: one is built per
    batched id, and a tuple is built about four times faster (issue 12); it is as immutable."""

    key: str
    window_ms: int
    sliding: bool
    fingerprint_check: bool
    fingerprint: bytes
    trace_context: bytes = b""
    acks: ReplicaAcks = NO_ACKS
    quota: Quota | None = None


@dataclass(frozen=True, slots=True)
class ClaimItem:
    key: str
    lease_ms: int
    sliding: bool
    fingerprint_check: bool
    fingerprint: bytes
    trace_context: bytes = b""
    acks: ReplicaAcks = NO_ACKS
    quota: Quota | None = None
    # Set by a Claim that will wait (ADR 0065): an IN_PROGRESS record is flagged so that its
    # holder's Commit or Release publishes the record key on this channel. "" = no flag.
    wake_channel: str = ""
    fence: str = "dedup:#fence"  # keys.fence_base(prefix): where the slot's token high-water mark lives


@dataclass(frozen=True, slots=True)
class CommitItem:
    key: str
    fencing_token: int
    window_ms: int
    sliding: bool
    result: bytes | None
    trace_context: bytes = b""
    acks: ReplicaAcks = NO_ACKS


@dataclass(frozen=True, slots=True)
class ReleaseItem:
    key: str
    fencing_token: int
    acks: ReplicaAcks = NO_ACKS


@dataclass(frozen=True, slots=True)
class RenewItem:
    key: str
    fencing_token: int
    lease_ms: int
    acks: ReplicaAcks = NO_ACKS


class Store(Protocol):
    async def check(self, items: Sequence[CheckItem]) -> ItemResults[CheckDecision]: ...

    async def claim(self, items: Sequence[ClaimItem]) -> ItemResults[ClaimDecision]: ...

    async def commit(self, items: Sequence[CommitItem]) -> ItemResults[CommitDecision]: ...

    async def release(self, item: ReleaseItem) -> ReleaseDecision: ...

    async def renew(self, item: RenewItem) -> RenewDecision: ...

    async def inspect(self, key: str) -> Inspection: ...

    async def forget(self, key: str) -> ForgetOutcome: ...

    async def ping(self) -> None:
        """Raises StoreError when the store does not answer."""
        ...

    async def close(self) -> None: ...
