"""Builds the RedisStore for a URL: redis-py for admin, FastPipe for scripts where it can."""

from __future__ import annotations

from sidecar.redis_store import fastpipe
from sidecar.redis_store.connection import connect
from sidecar.redis_store.scripts import script_sources
from sidecar.redis_store.store import RedisStore

CLIENTS = ("fastpipe", "redis-py")


def open_store(url: str, *, timeout_s: float, client: str = "fastpipe") -> RedisStore:
    """The store for `url`; scripts go over FastPipe for redis:// and unix:// unless client='redis-py'."""
    if client not in CLIENTS:
        raise ValueError(f"unknown Redis client {client!r}: use one of {', '.join(CLIENTS)}")
    fast = None
    if client == "fastpipe" and fastpipe.supports(url):
        fast = fastpipe.FastScripts(fastpipe.FastPipe(url, timeout_s=timeout_s), script_sources())
    return RedisStore(connect(url, timeout_s=timeout_s), fast)
