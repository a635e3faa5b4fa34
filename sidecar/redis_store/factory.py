"""The store for a URL and mode: RedisStore (standalone, Sentinel) or ClusterStore.

Standalone redis:// and unix:// stores run their scripts over FastPipe (ADR 0070) unless
client='redis-py'; redis-py stays for admin, health, TLS, Sentinel and Cluster.
"""

from __future__ import annotations

from redis.asyncio import RedisCluster

from sidecar.redis_store import fastpipe
from sidecar.redis_store.cluster import ClusterStore, inspect_cluster
from sidecar.redis_store.connection import RedisClient, connect, mode_of
from sidecar.redis_store.safety import StoreReport, inspect_store
from sidecar.redis_store.scripts import script_sources
from sidecar.redis_store.store import RedisStore

CLIENTS = ("fastpipe", "redis-py")


CHECK_PATHS = ("auto", "script")


def open_store(
    url: str, *, timeout_s: float, mode: str = "auto", client: str = "fastpipe", check_path: str = "auto"
) -> RedisStore:
    """The store; Check without Lua (check_path auto) starts once `use_server` learns the version."""
    if client not in CLIENTS:
        raise ValueError(f"unknown Redis client {client!r}: use one of {', '.join(CLIENTS)}")
    if check_path not in CHECK_PATHS:
        raise ValueError(f"unknown check path {check_path!r}: use one of {', '.join(CHECK_PATHS)}")
    redis_client = connect(url, timeout_s=timeout_s, mode=mode)
    store: RedisStore
    if isinstance(redis_client, RedisCluster):
        store = ClusterStore(redis_client)
    else:
        fast = None
        if client == "fastpipe" and mode_of(url, mode) == "standalone" and fastpipe.supports(url):
            fast = fastpipe.FastScripts(fastpipe.FastPipe(url, timeout_s=timeout_s), script_sources())
        store = RedisStore(redis_client, fast)
    store.check_path = check_path
    return store


async def inspect_any(client: RedisClient) -> StoreReport:
    """The startup checks: every master of a cluster, else the one (current) master."""
    if isinstance(client, RedisCluster):
        return await inspect_cluster(client)
    return await inspect_store(client)
