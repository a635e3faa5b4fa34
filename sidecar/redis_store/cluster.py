"""Cluster mode: a batch is split by hash slot and the groups run in parallel.

Every record key is `<prefix><ns>:{<digest of id>}`: its hash tag is the id's
digest, so one record (and everything its script touches) lives in one slot and
one namespace spreads over all 16384 slots. The scripts take any number of keys
of one slot, so a batch becomes one script call per slot, all in flight at once
(bounded by `fanout`), and each group's reply or error goes back to its items'
places in request order: a batch that partly fails reports per-item errors.

MOVED/ASK redirections and the topology refresh after a failover are the
client library's (redis-py RedisCluster); it never retries a command after a
connection error or timeout (a retried write is unsafe), so those surface as
UNAVAILABLE for the items of that group only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from sidecar.domain.errors import StoreError
from sidecar.domain.outcomes import CheckDecision, ClaimDecision, CommitDecision
from sidecar.domain.store import CheckItem, ClaimItem, CommitItem, ItemResults, Quota
from sidecar.redis_store.addresses import parse_multi_host
from sidecar.redis_store.connection import common_options
from sidecar.redis_store.errors import to_store_error
from sidecar.redis_store.safety import StoreReport, inspect_store
from sidecar.redis_store.slot_tags import slot_tag
from sidecar.redis_store.store import RedisStore

DEFAULT_FANOUT = 64
log = logging.getLogger("dedup.cluster")


def connect_cluster(url: str, *, timeout_s: float, max_connections: int) -> RedisCluster:
    """`redis+cluster://[user:pass@]h:p,h:p` (seed nodes), or a plain redis:// URL with --redis-mode cluster."""
    parsed = parse_multi_host(url, default_port=6379)
    options = common_options(timeout_s, max_connections)
    options.pop("client_name")  # the cluster client sets CLIENT SETNAME per node itself
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in parsed.hosts],
        username=parsed.username,
        password=parsed.password,
        ssl=parsed.tls,
        client_name="dedup-sidecar",
        **options,
    )


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


K = TypeVar("K", bound=_Keyed)
R = TypeVar("R")


def group_by_slot(keys: Sequence[str]) -> dict[int, list[int]]:
    """Item indices by hash slot, each list in request order."""
    groups: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key_slot(key.encode()), []).append(index)
    return groups


def _group_error(err: Exception) -> StoreError:
    """The error for one slot group's items. The outcome of a group that failed inside the
    client library (seen: redis-py losing a connection's writer while the topology changes
    under concurrent calls) is unknown too: UNAVAILABLE, like a lost connection, and logged."""
    try:
        return to_store_error(err)
    except Exception:
        log.warning("cluster client failed a slot group", exc_info=err)
        return StoreError("client", f"{type(err).__name__}: {err}")


class ClusterStore(RedisStore):
    """RedisStore over a RedisCluster: batches run per slot, in parallel, through `_run`."""

    def __init__(self, client: RedisCluster, fanout: int = DEFAULT_FANOUT) -> None:
        super().__init__(client)
        self._fanout = asyncio.Semaphore(fanout)

    async def _per_slot(
        self, items: Sequence[K], run: Callable[[Sequence[K]], Awaitable[ItemResults[R]]]
    ) -> ItemResults[R]:
        groups = list(group_by_slot([item.key for item in items]).values())
        if len(groups) == 1:
            return await run(items)

        async def one(indices: list[int]) -> ItemResults[R]:
            async with self._fanout:
                return await run([items[i] for i in indices])

        replies = await asyncio.gather(*(one(indices) for indices in groups), return_exceptions=True)
        out: list[R | StoreError | None] = [None] * len(items)
        for indices, reply in zip(groups, replies, strict=True):
            if isinstance(reply, BaseException):
                if not isinstance(reply, Exception):
                    raise reply
                error = _group_error(reply)
                for i in indices:
                    out[i] = error
            else:
                for i, result in zip(indices, reply, strict=True):
                    out[i] = result
        assert all(result is not None for result in out)
        return out  # type: ignore[return-value]

    def quota_counter(self, quota: Quota, record_key: str) -> tuple[str, int]:
        """One counter per (namespace, slot), in the record's slot, with an even share of the limit (ADR 0051)."""
        slots = REDIS_CLUSTER_HASH_SLOTS
        return f"{quota.key}:{{{slot_tag(key_slot(record_key.encode()))}}}", -(-quota.limit // slots)

    async def check(self, items: Sequence[CheckItem]) -> ItemResults[CheckDecision]:
        return await self._per_slot(items, super().check)

    async def claim(self, items: Sequence[ClaimItem]) -> ItemResults[ClaimDecision]:
        return await self._per_slot(items, super().claim)

    async def commit(self, items: Sequence[CommitItem]) -> ItemResults[CommitDecision]:
        return await self._per_slot(items, super().commit)


async def inspect_cluster(client: RedisCluster, timeout_s: float = 2.0) -> StoreReport:
    """The startup checks on every master; any master's problem is the cluster's."""
    try:
        await client.initialize()
        primaries = client.get_primaries()
    except Exception as err:
        raise to_store_error(err) from err
    reports: list[tuple[str, StoreReport]] = []
    for node in primaries:
        options: dict[str, Any] = dict(node.connection_kwargs)
        direct = Redis(
            host=node.host,
            port=int(node.port),
            username=options.get("username"),
            password=options.get("password"),
            ssl=bool(options.get("ssl")),
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        try:
            reports.append((node.name, await inspect_store(direct)))
        finally:
            await direct.aclose()
    first = reports[0][1]
    return StoreReport(
        version=first.version,
        server=first.server,
        role=f"cluster ({len(reports)} masters)",
        connected_replicas=min(report.connected_replicas for _, report in reports),
        maxmemory_policy=first.maxmemory_policy,
        appendonly=first.appendonly,
        appendfsync=first.appendfsync,
        verifiable=all(report.verifiable for _, report in reports),
        problems=tuple(f"{name}: {p}" for name, report in reports for p in report.problems),
        warnings=tuple(f"{name}: {w}" for name, report in reports for w in report.warnings),
    )
