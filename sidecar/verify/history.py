"""What happened during a verification run, and the checker that judges it, per kind of sink.

The consumers apply every message to three sinks side by side (docs/effectively-once.md):
- transactional: the effect and its `applied` marker in one atomic step; the effect runs only
  when the marker is new (the recipe's INSERT ... ON CONFLICT DO NOTHING);
- fenced: a resource that accepts a write only with a token >= the one it stored;
- plain: an effect that cannot be fenced, applied right after a synchronous Renew (`ensure()`).
The history also records every ACQUIRED claim, every COMMITTED answer and what became of each
holder after its effect (committed, LEASE_LOST, commit unconfirmed, died): the causes of the
plain sink's repeats.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

# What became of a holder after its effect; the plain sink's repeat causes, in words.
FATE_CAUSES = {
    "crashed": "holder died after its effect, before Commit",
    "lease_lost": "Commit answered LEASE_LOST: the lease ended before the Commit",
    "unconfirmed": "Commit not confirmed within the lease (sidecar or Redis unreachable)",
    "committed": "repeated after a recorded Commit (a wrong answer)",
    "pending": "holder still running when the run ended",
}


@dataclass(frozen=True, slots=True)
class Application:
    """One attempt to apply a message's effect to the fenced sink."""

    message: str
    token: int
    consumer: int
    claimed_at: float  # monotonic time the Claim that granted `token` was sent
    applied_at: float
    accepted: bool  # False: the fenced sink refused a stale token
    lease_expired: bool = False  # written after the holder's lease had ended (a stale writer)
    lease_s: float = 1e9


class FencedSink:
    """A downstream store that rejects writes carrying an older fencing token."""

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


class TransactionalSink:
    """The effect and its `applied(message)` marker in one atomic step (one database transaction)."""

    def __init__(self) -> None:
        self.applied: dict[str, int] = {}  # message -> token of the transaction that applied it
        self.effects: Counter[str] = Counter()

    def apply(self, message: str, token: int) -> bool:
        """True when this is the first application: the effect ran."""
        if message in self.applied:
            return False
        self.applied[message] = token
        self.effects[message] += 1
        return True


class PlainSink:
    """An effect that cannot be fenced or rolled back: every call is applied."""

    def __init__(self) -> None:
        self.applications: list[tuple[str, int]] = []  # (message, token), in order

    def apply(self, message: str, token: int) -> None:
        self.applications.append((message, token))


@dataclass
class History:
    sink: FencedSink = field(default_factory=FencedSink)
    transactional: TransactionalSink = field(default_factory=TransactionalSink)
    plain: PlainSink = field(default_factory=PlainSink)
    acquired: list[tuple[str, int, float]] = field(default_factory=list)  # (message, token, claim sent at)
    commits: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    fates: dict[tuple[str, int], str] = field(default_factory=dict)  # (message, token) -> FATE_CAUSES key
    acked: set[str] = field(default_factory=set)
    lease_lost: int = 0
    conflicts: int = 0
    rpc_errors: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)

    def committed(self, message: str, token: int, now: float) -> None:
        self.commits[message].append((token, now))
        self.fates[(message, token)] = "committed"


@dataclass(frozen=True)
class Verdict:
    messages: int
    acked: int
    applied: int  # messages with a transactional effect
    lost: list[str]  # input minus applied, on any sink
    transactional_duplicates: int
    fenced_repeats: int  # accepted fenced writes beyond the first, each by a newer token
    stale_fenced_writes: int  # accepted fenced writes with a token below one already written
    fenced_rejections: int
    plain_duplicates: int
    plain_causes: dict[str, int]
    duplicates_after_commit: int  # an ACQUIRED claim sent after another holder's COMMITTED answer
    lease_lost: int
    conflicts: int
    rpc_errors: dict[str, int]
    outcomes: dict[str, int]
    faults: dict[str, int]

    @property
    def ok(self) -> bool:
        """Nothing lost, the transactional sink exactly once, no stale fenced write, no wrong answer.

        Plain-sink repeats are reported with their causes; they never make a run "effectively once"
        for that sink, and they do not fail the verdict (they are the documented crash window)."""
        return (
            not self.lost
            and self.transactional_duplicates == 0
            and self.stale_fenced_writes == 0
            and self.duplicates_after_commit == 0
            and not self.conflicts
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "messages": self.messages,
            "acked": self.acked,
            "applied": self.applied,
            "lost": len(self.lost),
            "lost_sample": self.lost[:20],
            "sinks": {
                "transactional": {"duplicate_effects": self.transactional_duplicates},
                "fenced": {
                    "repeats": self.fenced_repeats,
                    "stale_writes": self.stale_fenced_writes,
                    "rejected": self.fenced_rejections,
                },
                "plain": {"duplicate_effects": self.plain_duplicates, "causes": self.plain_causes},
            },
            "duplicates_after_commit": self.duplicates_after_commit,
            "lease_lost": self.lease_lost,
            "conflicts": self.conflicts,
            "rpc_errors": self.rpc_errors,
            "outcomes": self.outcomes,
            "faults": self.faults,
        }


def _fenced(history: History) -> tuple[set[str], int, int, int]:
    """(messages written, repeats, stale writes, rejections) of the fenced sink, in write order."""
    written: dict[str, int] = {}
    repeats = stale = rejected = 0
    for app in history.sink.applications:
        if not app.accepted:
            rejected += 1
            continue
        if app.message in written:
            repeats += 1
            stale += app.token < written[app.message]
        written[app.message] = max(app.token, written.get(app.message, 0))
    return set(written), repeats, stale, rejected


def _plain(history: History) -> tuple[set[str], Counter[str]]:
    """(messages applied, causes of every repeat): the fate of the earlier holder of each pair."""
    last: dict[str, int] = {}
    causes: Counter[str] = Counter()
    for message, token in history.plain.applications:
        if message in last:
            fate = history.fates.get((message, last[message]), "pending")
            causes[FATE_CAUSES.get(fate, fate)] += 1
        last[message] = token
    return set(last), causes


def check(messages: list[str], history: History) -> Verdict:
    """Lost = input minus applied (on every sink); per-sink duplicates; a duplicate after commit = a
    Claim ACQUIRED although it was sent after another holder's Commit was answered COMMITTED (the
    sidecar forgot a commit: a wrong answer, whatever the sinks did)."""
    fenced_written, repeats, stale, rejected = _fenced(history)
    plain_applied, causes = _plain(history)
    applied = set(history.transactional.applied)
    lost = [m for m in messages if m not in applied or m not in fenced_written or m not in plain_applied]
    after_commit = sum(
        1
        for message, token, sent_at in history.acquired
        if any(other != token and at < sent_at for other, at in history.commits.get(message, []))
    )
    return Verdict(
        messages=len(messages),
        acked=len(history.acked),
        applied=len(applied),
        lost=lost,
        transactional_duplicates=sum(n - 1 for n in history.transactional.effects.values() if n > 1),
        fenced_repeats=repeats,
        stale_fenced_writes=stale,
        fenced_rejections=rejected,
        plain_duplicates=sum(causes.values()),
        plain_causes=dict(causes),
        duplicates_after_commit=after_commit,
        lease_lost=history.lease_lost,
        conflicts=history.conflicts,
        rpc_errors=dict(history.rpc_errors),
        outcomes=dict(history.outcomes),
        faults=dict(history.faults),
    )
