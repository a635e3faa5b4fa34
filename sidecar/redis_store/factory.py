"""The store for a URL and mode: RedisStore (standalone, Sentinel) or ClusterStore."""

from __future__ import annotations

from redis.asyncio import RedisCluster

from sidecar.redis_store.cluster import ClusterStore, inspect_cluster
from sidecar.redis_store.connection import RedisClient, connect
from sidecar.redis_store.safety import StoreReport, inspect_store
from sidecar.redis_store.store import RedisStore


def open_store(url: str, *, timeout_s: float, mode: str = "auto") -> RedisStore:
    client = connect(url, timeout_s=timeout_s, mode=mode)
    if isinstance(client, RedisCluster):
        return ClusterStore(client)
    return RedisStore(client)


async def inspect_any(client: RedisClient) -> StoreReport:
    """The startup checks: every master of a cluster, else the one (current) master."""
    if isinstance(client, RedisCluster):
        return await inspect_cluster(client)
    return await inspect_store(client)
