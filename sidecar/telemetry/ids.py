"""How telemetry may show a record id: per the namespace's `trace_ids` (raw, hash or omit)."""

from __future__ import annotations

from sidecar.domain.keys import id_digest
from sidecar.domain.policy import TraceIds

RAW_ATTRIBUTE = "dedup.id"
HASH_ATTRIBUTE = "dedup.id_hash"


def shown_id(mode: TraceIds, record_id: bytes) -> tuple[str, str] | None:
    """(attribute name, value) to show, or None when the id must not appear at all.

    `hash` gives the same 22-character digest the Redis key carries, so an
    operator can find the record without the id ever leaving the sidecar.
    """
    if not record_id or mode is TraceIds.OMIT:
        return None
    if mode is TraceIds.RAW:
        return RAW_ATTRIBUTE, record_id.decode("utf-8", errors="backslashreplace")
    return HASH_ATTRIBUTE, id_digest(record_id)
