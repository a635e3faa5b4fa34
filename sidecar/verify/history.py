"""What happened during a verification run, and the checker that judges it.

The history is written by the consumers as they go: every effect application
(accepted or rejected by the fenced sink), every COMMITTED answer, every
LEASE_LOST, every RPC error. The checker needs nothing else.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Application:
    """One attempt to apply a message's effect to the sink."""

    message: str
    token: int
    consumer: int
    claimed_at: float  # monotonic time the Claim that granted `token` was sent
    applied_at: float
    accepted: bool  # False: the fenced sink refused a stale token
    lease_expired: bool = False  # written after the holder's lease had ended (a stale writer)
    lease_s: float = 1e9


class FencedSink:
    """The effect log: a downstream store that rejects writes carrying an older fencing token."""

    def __init__(self) -> None:
        self.highest: dict[str, int] = {}
        self.applications: list[Application] = []

    def apply(
        self, message: str, token: int, consumer: int, claimed_at: float, now: float, lease_s: float = 1e9
    ) -> bool:
        accepted = token >= self.highest.get(message, 0)
        if accepted:
            self.highest[message] = token
        expired = now > claimed_at + lease_s
        self.applications.append(Application(message, token, consumer, claimed_at, now, accepted, expired, lease_s))
        return accepted

    def newer_than(self, message: str, token: int) -> bool:
        return self.highest.get(message, 0) > token


@dataclass
class History:
    sink: FencedSink = field(default_factory=FencedSink)
    commits: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    acked: set[str] = field(default_factory=set)
    lease_lost: int = 0
    conflicts: int = 0
    rpc_errors: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)

    def committed(self, message: str, token: int, now: float) -> None:
        self.commits[message].append((token, now))


@dataclass(frozen=True)
class Verdict:
    messages: int
    acked: int
    applied: int
    lost: list[str]
    duplicate_effects: int
    # of which one writer's lease ended before its write or before its Commit was confirmed (an
    # outage or pause longer than the lease): at-least-once; only an idempotent sink stops these
    stale_writer_duplicates: int
    duplicates_after_commit: int
    fenced_rejections: int
    lease_lost: int
    conflicts: int
    rpc_errors: dict[str, int]
    outcomes: dict[str, int]
    faults: dict[str, int]

    @property
    def ok(self) -> bool:
        """The guarantees: nothing lost, no effect applied twice, no wrong answer."""
        unexplained = self.duplicate_effects - self.stale_writer_duplicates
        return not self.lost and unexplained == 0 and self.duplicates_after_commit == 0 and not self.conflicts

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "messages": self.messages,
            "acked": self.acked,
            "applied": self.applied,
            "lost": len(self.lost),
            "lost_sample": self.lost[:20],
            "duplicate_effects": self.duplicate_effects,
            "stale_writer_duplicates": self.stale_writer_duplicates,
            "duplicates_after_commit": self.duplicates_after_commit,
            "fenced_rejections": self.fenced_rejections,
            "lease_lost": self.lease_lost,
            "conflicts": self.conflicts,
            "rpc_errors": self.rpc_errors,
            "outcomes": self.outcomes,
            "faults": self.faults,
        }


def check(messages: list[str], history: History) -> Verdict:
    """Lost = input minus applied; duplicate effects = accepted applications beyond the first;
    a duplicate after commit = an application whose Claim was sent after another holder's
    Commit had been answered COMMITTED (the sidecar forgot a commit: a wrong answer)."""
    accepted: dict[str, list[Application]] = defaultdict(list)
    rejected = 0
    for app in history.sink.applications:
        if app.accepted:
            accepted[app.message].append(app)
        else:
            rejected += 1
    lost = [m for m in messages if not accepted.get(m)]
    duplicates = sum(len(apps) - 1 for apps in accepted.values())

    def unconfirmed(app: Application) -> bool:
        """A stale writer, or a holder whose Commit was not confirmed within its lease (an outage)."""
        commits = history.commits.get(app.message, [])
        in_time = any(t == app.token and at <= app.claimed_at + app.lease_s for t, at in commits)
        return app.lease_expired or not in_time

    stale = sum(len(apps) - 1 for apps in accepted.values() if any(unconfirmed(app) for app in apps))
    after_commit = 0
    for message, apps in accepted.items():
        for app in apps:
            if any(token != app.token and at < app.claimed_at for token, at in history.commits.get(message, [])):
                after_commit += 1
    return Verdict(
        messages=len(messages),
        acked=len(history.acked),
        applied=len(accepted),
        lost=lost,
        duplicate_effects=duplicates,
        stale_writer_duplicates=stale,
        duplicates_after_commit=after_commit,
        fenced_rejections=rejected,
        lease_lost=history.lease_lost,
        conflicts=history.conflicts,
        rpc_errors=dict(history.rpc_errors),
        outcomes=dict(history.outcomes),
        faults=dict(history.faults),
    )
