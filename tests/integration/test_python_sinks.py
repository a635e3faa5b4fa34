"""The Python client's sink recipes (dedup_client.sinks) on a real database: SQLite (stdlib).

The PostgreSQL path (psycopg, paramstyle "format") is exercised by the pipeline tests.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from dedup_client.sinks import (
    APPLIED_DDL,
    FENCE_DDL,
    SQLITE_APPLIED_DDL,
    SQLITE_FENCE_DDL,
    advance_fence,
    mark_applied,
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(tmp_path / "sink.db")
    conn.execute(SQLITE_APPLIED_DDL)
    conn.execute(SQLITE_FENCE_DDL)
    conn.execute("CREATE TABLE ledger (account TEXT NOT NULL, amount INTEGER NOT NULL)")
    conn.commit()
    yield conn
    conn.close()


def apply_charge(conn: sqlite3.Connection, id: str, token: int, *, crash: bool = False) -> bool:
    """The transactional recipe: the effect and the applied row in one transaction."""
    with conn:  # commits, or rolls back on an exception
        cur = conn.cursor()
        first = mark_applied(cur, "payments.charge", id, token, paramstyle="qmark")
        if first:
            cur.execute("INSERT INTO ledger VALUES (?, ?)", ("acct-1", 100))
        if crash:
            raise RuntimeError("crash before the transaction commits")
    return first


def ledger_rows(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM ledger").fetchone()[0])


def test_mark_applied_runs_the_effect_once(db: sqlite3.Connection) -> None:
    assert apply_charge(db, "msg-1", 1)
    assert not apply_charge(db, "msg-1", 2)  # a redelivery after a lost commit: skipped
    assert apply_charge(db, "msg-2", 3)
    assert ledger_rows(db) == 2
    assert db.execute("SELECT token FROM dedup_applied WHERE id = ?", (b"msg-1",)).fetchone() == (1,)


def test_a_rolled_back_transaction_leaves_no_mark(db: sqlite3.Connection) -> None:
    with pytest.raises(RuntimeError):
        apply_charge(db, "msg-1", 1, crash=True)
    assert ledger_rows(db) == 0
    assert apply_charge(db, "msg-1", 2)  # the redelivery applies it
    assert ledger_rows(db) == 1


def test_ids_are_per_namespace_and_binary_safe(db: sqlite3.Connection) -> None:
    cur = db.cursor()
    assert mark_applied(cur, "a", b"\x00\xff", 1, paramstyle="qmark")
    assert mark_applied(cur, "b", b"\x00\xff", 1, paramstyle="qmark")
    assert not mark_applied(cur, "a", b"\x00\xff", 5, paramstyle="qmark")


def test_fence_accepts_equal_or_newer_tokens_only(db: sqlite3.Connection) -> None:
    cur = db.cursor()
    assert advance_fence(cur, "account/1", 5, paramstyle="qmark")  # first writer
    assert advance_fence(cur, "account/1", 5, paramstyle="qmark")  # the same holder again
    assert advance_fence(cur, "account/1", 7, paramstyle="qmark")  # a newer holder
    assert not advance_fence(cur, "account/1", 6, paramstyle="qmark")  # a stale holder is refused
    assert db.execute("SELECT token FROM dedup_fence").fetchone() == (7,)
    assert advance_fence(cur, "account/2", 1, paramstyle="qmark")  # resources are independent


@pytest.mark.parametrize("paramstyle", ["qmark", "numeric", "named"])
def test_paramstyles_sqlite_understands(db: sqlite3.Connection, paramstyle: str) -> None:
    cur = db.cursor()
    assert mark_applied(cur, "ns", f"id-{paramstyle}", 1, paramstyle=paramstyle)
    assert not mark_applied(cur, "ns", f"id-{paramstyle}", 1, paramstyle=paramstyle)
    assert advance_fence(cur, paramstyle, 3, paramstyle=paramstyle)
    assert not advance_fence(cur, paramstyle, 2, paramstyle=paramstyle)


class RecordingCursor:
    """Records the statement a psycopg-style ("format"/"pyformat") driver would get."""

    rowcount = 1

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def execute(self, operation: str, parameters: object = None, /) -> None:
        self.seen.append((operation, parameters))


def test_format_and_pyformat_placeholders() -> None:
    cur = RecordingCursor()
    assert mark_applied(cur, "ns", "id", 4)
    assert advance_fence(cur, "r", 4, paramstyle="pyformat")
    (sql1, params1), (sql2, params2) = cur.seen
    assert "VALUES (%s, %s, %s) ON CONFLICT (namespace, id) DO NOTHING" in sql1
    assert params1 == ("ns", b"id", 4)
    assert "VALUES (%(resource)s, %(token)s)" in sql2
    assert params2 == {"resource": "r", "token": 4}
    with pytest.raises(ValueError, match="paramstyle"):
        mark_applied(cur, "ns", "id", 4, paramstyle="dollar")


def test_postgresql_ddl_is_the_documented_one() -> None:
    assert "PRIMARY KEY (namespace, id)" in APPLIED_DDL
    assert "id bytea NOT NULL" in APPLIED_DDL
    assert FENCE_DDL == "CREATE TABLE IF NOT EXISTS dedup_fence (resource text PRIMARY KEY, token bigint NOT NULL)"
