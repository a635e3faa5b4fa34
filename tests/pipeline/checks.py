"""The verdict, counted from PostgreSQL, and a cause for every plain-sink duplicate.

- lost: a published id with no transactional effect;
- transactional duplicates: an id with more than one effect row (must be 0);
- stale fenced writes: a write whose token is lower than one already written for its id (must be 0);
- plain duplicates: every extra plain effect, with the cause found in the consumers' event
  logs and the chaos log (what happened to the earlier writer between its effect and its Commit).
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Causes that the sink table of docs/effectively-once.md allows for a plain effect.
EXPECTED_CAUSES = frozenset(
    {
        "holder killed (SIGKILL) after its effect, before Commit",
        "holder paused (SIGSTOP) past its lease after its effect; another holder took over",
        "Commit not recorded: the sidecar or Redis was unreachable",
        "lease lost before Commit (sidecar or Redis outage longer than the lease)",
        "holder paused (SIGSTOP) between its lease check and its plain effect",
    }
)


@dataclass(frozen=True)
class Row:
    seq: int
    id: str
    token: int
    consumer: str


@dataclass
class Report:
    messages: int
    lost: list[str]
    unknown: list[str]
    tx_duplicates: dict[str, int]
    stale_fenced: list[tuple[str, int, int]]  # (id, stale token, newer token already written)
    fenced_repeats: int
    plain_duplicates: list[tuple[str, str]]  # (id, cause)
    chaos: dict[str, int] = field(default_factory=dict)

    def causes(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for _, cause in self.plain_duplicates:
            out[cause] += 1
        return dict(out)

    def unexplained(self) -> list[tuple[str, str]]:
        return [(i, c) for i, c in self.plain_duplicates if c not in EXPECTED_CAUSES]

    def summary(self) -> str:
        causes = "; ".join(f"{n}x {cause}" for cause, n in sorted(self.causes().items())) or "none"
        chaos = ", ".join(f"{kind}={n}" for kind, n in sorted(self.chaos.items()))
        return (
            f"pipeline: messages={self.messages} lost={len(self.lost)} "
            f"transactional_duplicates={sum(self.tx_duplicates.values())} "
            f"fenced_stale_writes={len(self.stale_fenced)} fenced_repeats={self.fenced_repeats} "
            f"plain_duplicates={len(self.plain_duplicates)} ({causes}) chaos: {chaos}"
        )


def read_events(paths: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Every consumer's events, by consumer name, in order (a line cut by SIGKILL is dropped)."""
    by_consumer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            by_consumer[entry["c"]].append(entry)
    return by_consumer


def cause_of_repeat(earlier: Row, events: dict[str, list[dict[str, Any]]], chaos: list[dict[str, Any]]) -> str:
    """Why the earlier writer's effect did not end in a recorded Commit."""
    mine = [e for e in events.get(earlier.consumer, []) if e.get("id") == earlier.id]
    plain_at = next((e["t"] for e in mine if e["e"] == "plain" and e["token"] == earlier.token), None)
    after = [e for e in mine if plain_at is not None and e["t"] >= plain_at and e["e"] in ("outcome", "error")]
    paused = any(c["kind"] == "consumer_sigstop" and c["consumer"] == earlier.consumer for c in chaos)
    killed = any(c["kind"] == "consumer_sigkill" and c["consumer"] == earlier.consumer for c in chaos)
    if not after:
        if killed:
            return "holder killed (SIGKILL) after its effect, before Commit"
        return "unexplained: the holder left no outcome and was not killed"
    first = after[0]
    if first["e"] == "error":
        return "Commit not recorded: the sidecar or Redis was unreachable"
    if first["status"] == "LEASE_LOST":
        if paused:
            return "holder paused (SIGSTOP) past its lease after its effect; another holder took over"
        return "lease lost before Commit (sidecar or Redis outage longer than the lease)"
    return f"unexplained: the earlier holder's outcome was {first['status']} (a recorded Commit was repeated)"


def cause_of_stale_write(stale: Row, events: dict[str, list[dict[str, Any]]], chaos: list[dict[str, Any]]) -> str:
    """Why a holder with an older token wrote its plain effect after a newer one: the only expected
    cause is a pause that began after its `ensure()` succeeded and ended after its lease (no check
    can close that window; a fenced or transactional sink does)."""
    mine = [e for e in events.get(stale.consumer, []) if e.get("id") == stale.id and e.get("token") == stale.token]
    ensured = next((e["t"] for e in mine if e["e"] == "ensured"), None)
    wrote = next((e["t"] for e in mine if e["e"] == "plain"), None)
    for stop in (c for c in chaos if c["kind"] == "consumer_sigstop" and c["consumer"] == stale.consumer):
        cont = next(
            (
                c["t"]
                for c in chaos
                if c["kind"] == "consumer_sigcont" and c["consumer"] == stale.consumer and c["t"] >= stop["t"]
            ),
            None,
        )
        if ensured is not None and wrote is not None and cont is not None and ensured <= stop["t"] and wrote >= cont:
            return "holder paused (SIGSTOP) between its lease check and its plain effect"
    return "unexplained: a stale holder wrote after a newer one"


def analyse(
    published: list[str],
    tx_rows: list[Row],
    fenced_rows: list[Row],
    plain_rows: list[Row],
    events: dict[str, list[dict[str, Any]]],
    chaos: list[dict[str, Any]],
) -> Report:
    expected = set(published)
    tx_by_id: dict[str, list[Row]] = defaultdict(list)
    for row in tx_rows:
        tx_by_id[row.id].append(row)
    lost = sorted(expected - set(tx_by_id))
    unknown = sorted(set(tx_by_id) - expected)
    tx_duplicates = {i: len(rows) - 1 for i, rows in tx_by_id.items() if len(rows) > 1}

    stale: list[tuple[str, int, int]] = []
    highest: dict[str, int] = {}
    repeats = 0
    for row in sorted(fenced_rows, key=lambda r: r.seq):
        top = highest.get(row.id)
        if top is not None:
            repeats += 1
            if row.token < top:
                stale.append((row.id, row.token, top))
        highest[row.id] = max(row.token, top or 0)

    plain_by_id: dict[str, list[Row]] = defaultdict(list)
    for row in sorted(plain_rows, key=lambda r: r.seq):
        plain_by_id[row.id].append(row)
    duplicates: list[tuple[str, str]] = []
    for order_id, rows in sorted(plain_by_id.items()):
        for earlier, later in itertools.pairwise(rows):
            if later.token < earlier.token:
                duplicates.append((order_id, cause_of_stale_write(later, events, chaos)))
            else:
                duplicates.append((order_id, cause_of_repeat(earlier, events, chaos)))
    counts: dict[str, int] = defaultdict(int)
    for entry in chaos:
        counts[entry["kind"]] += 1
    return Report(
        messages=len(expected),
        lost=lost,
        unknown=unknown,
        tx_duplicates=tx_duplicates,
        stale_fenced=stale,
        fenced_repeats=repeats,
        plain_duplicates=duplicates,
        chaos=dict(counts),
    )


def pause_story(events: dict[str, list[dict[str, Any]]], chaos: list[dict[str, Any]], tx_rows: list[Row]) -> list[str]:
    """What became of each id a consumer held when it was SIGSTOPped (for the summary)."""
    lines = []
    for stop in (c for c in chaos if c["kind"] == "consumer_sigstop"):
        mine = [e for e in events.get(stop["consumer"], []) if e.get("id") == stop["id"] and e["t"] >= stop["t"] - 1]
        steps = ", ".join(_step(e) for e in mine)
        applied = [r for r in tx_rows if r.id == stop["id"]]
        by = f"{applied[0].consumer} (token {applied[0].token})" if applied else "nobody"
        lines.append(
            f"sigstop {stop['consumer']} holding {stop['id']} (token {stop['token']}): its steps: {steps or 'none'}; "
            f"transactional effect by {by}"
        )
    return lines


def _step(event: dict[str, Any]) -> str:
    """One consumer step for a summary line: `fenced=refused`, `outcome=LEASE_LOST`, `error=...`."""
    name = event["e"]
    if name in ("outcome", "error"):
        return f"{name}={event.get('status') or event.get('kind')}"
    if name == "fenced":
        return "fenced=written" if event.get("ok") else "fenced=refused"
    if name == "tx":
        return "tx=applied" if event.get("first") else "tx=already-applied"
    return str(name)
