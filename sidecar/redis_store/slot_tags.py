"""A short hash tag for every Redis Cluster slot, so a key can be put into a chosen slot.

The quota counter of a namespace in Cluster mode must live in the slot of the record it
guards (one script call touches both), so it is striped per slot: `<counter>:{<tag of slot>}`
(ADR 0051). The table is found once by trying base-36 strings in order (~170k CRC16s).
"""

from __future__ import annotations

import functools

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    out = ""
    while True:
        n, d = divmod(n, 36)
        out = _DIGITS[d] + out
        if n == 0:
            return out


@functools.cache
def _table() -> tuple[str, ...]:
    tags: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
    missing = REDIS_CLUSTER_HASH_SLOTS
    n = 0
    while missing:
        tag = _base36(n)
        slot = key_slot(tag.encode())
        if tags[slot] is None:
            tags[slot] = tag
            missing -= 1
        n += 1
    return tuple(t for t in tags if t is not None)


def slot_tag(slot: int) -> str:
    """The shortest base-36 string whose CRC16 slot is `slot`."""
    return _table()[slot]


def in_slot_of(base: str, record_key: str) -> str:
    """`<base>:{<tag>}`: the key named `base` striped per slot, in the slot of `record_key`."""
    return f"{base}:{{{slot_tag(key_slot(record_key.encode()))}}}"
