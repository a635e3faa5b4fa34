"""The two sink recipes (docs/effectively-once.md), for a DB-API cursor with %s parameters.

The same SQL as `dedup_client.sinks`; the consumer uses the client's helpers when the
installed client ships them, and these otherwise.
"""

from __future__ import annotations

from typing import Any


def mark_applied(cursor: Any, namespace: str, id: bytes | str, token: int) -> bool:
    """True when the caller's transaction is the first to apply (namespace, id): run the effect."""
    raw = id.encode() if isinstance(id, str) else id
    cursor.execute(
        "INSERT INTO dedup_applied (namespace, id, token) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (namespace, raw, token),
    )
    return bool(cursor.rowcount == 1)


def advance_fence(cursor: Any, resource: str, token: int) -> bool:
    """Compare-and-set: True when `token` >= the stored one (the write may proceed, same transaction)."""
    cursor.execute(
        "INSERT INTO dedup_fence (resource, token) VALUES (%s, %s) ON CONFLICT (resource) "
        "DO UPDATE SET token = EXCLUDED.token WHERE dedup_fence.token <= EXCLUDED.token",
        (resource, token),
    )
    return bool(cursor.rowcount == 1)
