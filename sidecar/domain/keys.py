"""Record keys: one pure function, never ambiguous.

A key is `<prefix><namespace>:{<tag>}` where `tag` is the unpadded base64url
BLAKE2b-128 digest of the id. The namespace charset has no ':', '{' or '}', so
the namespace part is unambiguous; the id is hashed, so binary ids of any
length up to the limit give fixed-size keys, and the hash tag spreads one
namespace over every Redis Cluster slot (no hot slot) while keeping anything
that belongs to the record in the record's slot.
"""

from __future__ import annotations

import binascii
import hashlib

DEFAULT_KEY_PREFIX = "dedup:"
_URLSAFE = bytes.maketrans(b"+/", b"-_")


def id_digest(record_id: bytes) -> str:
    """The 22-character base64url digest that stands for an id in keys, logs and traces."""
    # base64.urlsafe_b64encode(digest).rstrip(b"=") without its Python layers: this runs once per id.
    digest = hashlib.blake2b(record_id, digest_size=16).digest()
    return binascii.b2a_base64(digest, newline=False)[:22].translate(_URLSAFE).decode("ascii")


def record_key(prefix: str, namespace: str, record_id: bytes) -> str:
    """The Redis key of the record for (namespace, id)."""
    return record_key_after(record_key_head(prefix, namespace), record_id)


def record_key_head(prefix: str, namespace: str) -> str:
    """What every record key of the namespace starts with (worked out once per batch by the service)."""
    return f"{prefix}{namespace}:{{"


def record_key_after(head: str, record_id: bytes) -> str:
    """The record key of `record_id` in the namespace whose keys start with `head` (record_key_head)."""
    return f"{head}{id_digest(record_id)}}}"


def fence_base(prefix: str) -> str:
    """The name the fencing high-water marks share (ADR 0002); the store adds a slot tag to it.

    `#` is not in the namespace charset, so it never equals a record or quota key.
    """
    return f"{prefix}#fence"


def quota_key(prefix: str, namespace: str) -> str:
    """The namespace's quota counter (ADR 0051). It has no `{`, so it never equals a record key."""
    return f"{prefix}{namespace}:quota"


def wake_channel(prefix: str) -> str:
    """The pub/sub channel on which Commit and Release name the records that have waiting Claims (ADR 0065)."""
    return f"{prefix}wake"
