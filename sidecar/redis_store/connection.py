"""Redis clients built from a URL, with no automatic command retries.

A retried write is unsafe here: if a Check's first attempt was applied but its
reply was lost, a retry answers DUPLICATE for the caller's own mark and the
message would be skipped. So a lost reply fails the RPC (UNAVAILABLE) and the
caller's retry policy decides.

The deployment mode comes from the URL scheme (docs/scaling.md), or from
`--redis-mode` when the scheme alone cannot say:
  redis:// rediss:// unix://                     one Redis (standalone)
  redis+sentinel://[user:pass@]h:p,h:p/master[/db] a Sentinel-managed master
  redis+cluster://[user:pass@]h:p,h:p             a Redis Cluster (seed nodes)
(`rediss+sentinel://` / `rediss+cluster://` use TLS to the data nodes.)
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from redis.asyncio import Redis, RedisCluster
from redis.backoff import NoBackoff
from redis.retry import Retry

RedisClient = Redis | RedisCluster

MODES = ("auto", "standalone", "sentinel", "cluster")
CLIENT_NAME = "dedup-sidecar"


def mode_of(url: str, mode: str = "auto") -> str:
    """standalone, sentinel or cluster: the explicit mode, else the URL scheme's."""
    if mode != "auto":
        return mode
    scheme = url.partition("://")[0].lower()
    if scheme.endswith("+sentinel"):
        return "sentinel"
    if scheme.endswith("+cluster"):
        return "cluster"
    return "standalone"


def no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


def common_options(timeout_s: float, max_connections: int) -> dict[str, Any]:
    return {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": no_retry(),
        "max_connections": max_connections,
        "decode_responses": False,
        "client_name": CLIENT_NAME,
    }


def connect(url: str, *, timeout_s: float, max_connections: int = 256, mode: str = "auto") -> RedisClient:
    """An asyncio client for the URL's deployment mode (AUTH in the URL)."""
    chosen = mode_of(url, mode)
    if chosen == "sentinel":
        from sidecar.redis_store.sentinel import connect_sentinel

        return connect_sentinel(url, timeout_s=timeout_s, max_connections=max_connections)
    if chosen == "cluster":
        from sidecar.redis_store.cluster import connect_cluster

        return connect_cluster(url, timeout_s=timeout_s, max_connections=max_connections)
    return Redis.from_url(url, retry_on_timeout=False, **common_options(timeout_s, max_connections))


# Query parameters that carry secrets (password=, sentinel_password=, ssl_password=, ...).
_SECRET_PARAM = re.compile(r"pass|secret|token|key_?pass", re.IGNORECASE)


def url_secrets(url: str) -> list[str]:
    """Every secret the URL carries: the userinfo password and secret query values (raw and decoded)."""
    found: list[str] = []
    _, sep, rest = url.partition("://")
    if sep and "@" in rest.split("?", 1)[0]:
        credentials = rest.split("?", 1)[0].rpartition("@")[0]
        if ":" in credentials:
            found.append(credentials.split(":", 1)[1])
    for name, value in parse_qsl(url.partition("?")[2], keep_blank_values=True):
        if _SECRET_PARAM.search(name) and value:
            found.append(value)
    found += [unquote(secret) for secret in found]
    return sorted({secret for secret in found if secret}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """`text` (an error message, a report) with every secret of `url` replaced by ***."""
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text


def redact(url: str) -> str:
    """The URL with its password and secret query parameters replaced, for logs and reports."""
    base, question, query = url.partition("?")
    scheme, sep, rest = base.partition("://")
    if sep and "@" in rest:
        credentials, _, hosts = rest.rpartition("@")
        if ":" in credentials:
            credentials = credentials.split(":", 1)[0] + ":***"
        base = f"{scheme}://{credentials}@{hosts}"
    if question:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(f"{quote(k)}={'***' if _SECRET_PARAM.search(k) else quote(v)}" for k, v in pairs)
    return base + question + query
