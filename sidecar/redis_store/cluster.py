"""Cluster mode: a batch is split by hash slot, and sent as one pipeline per node.

Every record key is `<prefix><ns>:{<digest of id>}`: its hash tag is the id's
digest, so one record (and everything its script touches) lives in one slot and
one namespace spreads over all 16384 slots. The scripts take any number of keys
of one slot, so a batch becomes one script call per slot; the calls of the
slots one master owns go in one pipeline on one connection to it, all masters
at once (node_batches.py: one round trip per node, not per slot or per item).
Each slot group's reply or error goes back to its items' places in request
order: a batch that partly fails reports per-item errors.

How: each slot group runs the ordinary RedisStore method (arguments, reply
parsing, acks) in its own task; `_run`, instead of calling the script, hands
its call to the batch's `_Capture` and waits. When every group has handed in
its call (or failed before), the batch sends them all per node and wakes each
group with its reply. Single-key calls and one-slot batches take the plain
path (redis-py RedisCluster follows MOVED/ASK itself; it never retries after a
connection error or timeout, since a retried write is unsafe).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from sidecar.domain.errors import StoreError
from sidecar.domain.outcomes import CheckDecision, ClaimDecision, CommitDecision
from sidecar.domain.store import NO_ACKS, CheckItem, ClaimItem, CommitItem, ItemResults, Quota, ReplicaAcks
from sidecar.redis_store.addresses import parse_multi_host
from sidecar.redis_store.connection import common_options
from sidecar.redis_store.errors import to_store_error
from sidecar.redis_store.node_batches import ScriptCall, call_error, run_per_node
from sidecar.redis_store.safety import StoreReport, inspect_store
from sidecar.redis_store.slot_tags import slot_tag
from sidecar.redis_store.store import RedisStore
from sidecar.telemetry.spans import store_span

log = logging.getLogger("dedup.cluster")


def connect_cluster(url: str, *, timeout_s: float, max_connections: int) -> RedisCluster:
    """`redis+cluster://[user:pass@]h:p,h:p` (seed nodes), or a plain redis:// URL with --redis-mode cluster."""
    parsed = parse_multi_host(url, default_port=6379)
    if parsed.path not in ((), ("0",)):
        raise ValueError(f"Redis Cluster has only db 0: drop /{'/'.join(parsed.path)} from the URL")
    parsed.reject_query()
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


class _Capture:
    """The script calls of one batch's slot groups, collected to be sent per node."""

    def __init__(self, groups: int) -> None:
        self.calls: list[ScriptCall] = []
        self.waiters: list[asyncio.Future[None]] = []
        self.joined: set[asyncio.Task[Any] | None] = set()
        self.ready = asyncio.Event()
        self.name = ""
        self._missing = groups

    def arrive(self) -> None:
        """One group handed in its call, or ended without one."""
        self._missing -= 1
        if self._missing == 0:
            self.ready.set()

    def wake_all(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)


_CAPTURE: ContextVar[_Capture | None] = ContextVar("dedup_cluster_capture", default=None)


class ClusterStore(RedisStore):
    """RedisStore over a RedisCluster: a batch's slot groups go out as one pipeline per node."""

    def __init__(self, client: RedisCluster) -> None:
        super().__init__(client)
        self.cluster = client

    def use_server(self, version: str) -> None:
        """Cluster Checks stay scripted (ADR 0071): the SETs would need node_batches.py's
        no-retry, per-node pipelines, which run scripts only."""
        self.fast_check = None

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any], acks: ReplicaAcks = NO_ACKS) -> Any:
        capture = _CAPTURE.get()
        task = asyncio.current_task()
        if capture is None or task in capture.joined:
            return await super()._run(name, keys, args, acks)
        call = ScriptCall(self._scripts[name], keys, args, acks, key_slot(keys[0].encode()))
        waiter = asyncio.get_running_loop().create_future()
        capture.joined.add(task)
        capture.name = name
        capture.calls.append(call)
        capture.waiters.append(waiter)
        capture.arrive()
        await waiter
        if isinstance(call.result, BaseException):
            raise call_error(call.result) from call.result
        return call.result

    async def _send(self, capture: _Capture) -> None:
        keys = sum(len(call.keys) for call in capture.calls)
        try:
            if capture.calls:
                with store_span(capture.name, keys):
                    await run_per_node(self.cluster, capture.calls, self.ack_mode)
        finally:
            capture.wake_all()

    async def _per_slot(
        self, items: Sequence[K], run: Callable[[Sequence[K]], Awaitable[ItemResults[R]]]
    ) -> ItemResults[R]:
        groups = list(group_by_slot([item.key for item in items]).values())
        if len(groups) == 1:
            return await run(items)
        capture = _Capture(len(groups))

        async def one(indices: list[int]) -> ItemResults[R]:
            _CAPTURE.set(capture)  # this task's own context
            try:
                return await run([items[i] for i in indices])
            finally:
                if asyncio.current_task() not in capture.joined:
                    capture.arrive()  # failed before its script call

        tasks = [asyncio.create_task(one(indices)) for indices in groups]
        try:
            await capture.ready.wait()
            await self._send(capture)
            replies = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()
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
