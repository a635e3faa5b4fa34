"""Redis clients built from a URL, with no automatic command retries.

A retried write is unsafe here: if a Check's first attempt was applied but its
reply was lost, a retry answers DUPLICATE for the caller's own mark and the
message would be skipped. So a lost reply fails the RPC (UNAVAILABLE) and the
caller's retry policy decides.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def connect(url: str, *, timeout_s: float, max_connections: int = 256) -> Redis:
    """An asyncio Redis client for redis://, rediss:// or unix:// URLs (AUTH in the URL)."""
    return Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        max_connections=max_connections,
        decode_responses=False,
        client_name="dedup-sidecar",
    )


def redact(url: str) -> str:
    """The URL with any password replaced, for logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0] if ":" in credentials else ""
    return f"{scheme}://{user}:***@{host}"
