"""The sink recipes (docs/adr/0013-helper-rules.md), over any DB-API 2.0 cursor; no dependencies.

Transactional sink: write the effect and a `dedup_applied` row in one database
transaction; `mark_applied` says whether this transaction is the first to apply
the id (run the effect) or not (skip it; the helper still commits):

    def handler(lease: Lease) -> None:
        with conn:  # one transaction (psycopg: conn.transaction())
            cur = conn.cursor()
            if mark_applied(cur, "payments.charge", message.id, lease.token):
                cur.execute("UPDATE accounts SET balance = balance - %s WHERE id = %s", (amount, account))

Fenced resource: a write carries the lease's token and is accepted only when the
token is >= the one stored; `advance_fence` returns True when the write may
proceed (in the same transaction).

Placeholders follow the driver's `paramstyle`: "format" (psycopg, the default),
"pyformat", "qmark" (sqlite3), "numeric" or "named". The DDL is PostgreSQL's;
SQLite (3.24+) takes the `SQLITE_*` variants.
"""

from __future__ import annotations

from typing import Any, Protocol, SupportsIndex

APPLIED_DDL = (
    "CREATE TABLE IF NOT EXISTS dedup_applied (namespace text NOT NULL, id bytea NOT NULL, "
    "token bigint NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (namespace, id))"
)
FENCE_DDL = "CREATE TABLE IF NOT EXISTS dedup_fence (resource text PRIMARY KEY, token bigint NOT NULL)"
SQLITE_APPLIED_DDL = (
    "CREATE TABLE IF NOT EXISTS dedup_applied (namespace TEXT NOT NULL, id BLOB NOT NULL, "
    "token INTEGER NOT NULL, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (namespace, id))"
)
SQLITE_FENCE_DDL = "CREATE TABLE IF NOT EXISTS dedup_fence (resource TEXT PRIMARY KEY, token INTEGER NOT NULL)"

_MARK_APPLIED = (
    "INSERT INTO dedup_applied (namespace, id, token) VALUES ({}, {}, {}) ON CONFLICT (namespace, id) DO NOTHING"
)
_ADVANCE_FENCE = (
    "INSERT INTO dedup_fence (resource, token) VALUES ({}, {}) ON CONFLICT (resource) "
    "DO UPDATE SET token = EXCLUDED.token WHERE dedup_fence.token <= EXCLUDED.token"
)


class Cursor(Protocol):
    """The part of a DB-API 2.0 cursor the recipes use."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, operation: str, parameters: Any = ..., /) -> Any: ...


def _statement(template: str, names: tuple[str, ...], values: tuple[Any, ...], paramstyle: str) -> tuple[str, Any]:
    match paramstyle:
        case "format":
            return template.format(*["%s"] * len(names)), values
        case "qmark":
            return template.format(*["?"] * len(names)), values
        case "numeric":
            return template.format(*[f":{n + 1}" for n in range(len(names))]), values
        case "pyformat":
            return template.format(*[f"%({name})s" for name in names]), dict(zip(names, values, strict=True))
        case "named":
            return template.format(*[f":{name}" for name in names]), dict(zip(names, values, strict=True))
    raise ValueError(f"unsupported paramstyle {paramstyle!r}: format, pyformat, qmark, numeric or named")


def mark_applied(
    cursor: Cursor,
    namespace: str,
    id: bytes | str,
    token: SupportsIndex,
    *,
    paramstyle: str = "format",
) -> bool:
    """Records (namespace, id) as applied in the caller's transaction; True if this is the first time.

    `token` is the lease's fencing token (a Lease works too). Run the effect only when
    True, in the same transaction; when False a previous delivery applied it already.
    """
    raw = id.encode() if isinstance(id, str) else bytes(id)
    sql, params = _statement(
        _MARK_APPLIED, ("namespace", "id", "token"), (namespace, raw, token.__index__()), paramstyle
    )
    cursor.execute(sql, params)
    return cursor.rowcount == 1


def advance_fence(cursor: Cursor, resource: str, token: SupportsIndex, *, paramstyle: str = "format") -> bool:
    """Moves the fence of `resource` to `token` unless a newer holder's token is stored; True = write may proceed.

    Equal tokens pass (the same holder writing again). Do the write in the same transaction.
    """
    sql, params = _statement(_ADVANCE_FENCE, ("resource", "token"), (resource, token.__index__()), paramstyle)
    cursor.execute(sql, params)
    return cursor.rowcount == 1
