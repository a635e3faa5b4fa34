"""Wait-for-result on Sentinel (woken across a failover) and Cluster (woken from every master)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from sidecar.domain.keys import record_key
from sidecar.redis_store.cluster import ClusterStore
from tests.scale.servers import LocalCluster, Sentinels, wait_for
from tests.support.inprocess import RunningSidecar, running_sidecar
from tests.support.redis_server import RedisProcess

NS = "orders"
WOKEN_WITHIN_S = 3.0  # far below the holders' 60 s leases: a wake-up, not the timer


def claim(record_id: bytes, **fields: object) -> pb.ClaimRequest:
    return pb.ClaimRequest(namespace=NS, id=record_id, **fields)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], within_s: float = 20.0) -> None:
    async with asyncio.timeout(within_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def committed_wakes_waiter(waiting: RunningSidecar, holding: dedup_pb2_grpc.DedupStub, record_id: bytes) -> None:
    """A Claim through `waiting` waits on a holder of `holding`; the holder's Commit wakes it."""
    assert waiting.waiters is not None
    before = len(waiting.waiters)
    holder = await holding.Claim(claim(record_id, lease_ms=60_000), timeout=5)
    assert holder.outcome == pb.CLAIM_OUTCOME_ACQUIRED
    waiter = asyncio.ensure_future(waiting.stub.Claim(claim(record_id, wait_ms=30_000), timeout=40))
    await until(lambda: len(waiting.waiters or ()) == before + 1)
    started = time.monotonic()
    commit = pb.CommitRequest(namespace=NS, id=record_id, fencing_token=holder.fencing_token, result=record_id)
    assert (await holding.Commit(commit, timeout=5)).outcome == pb.COMMIT_OUTCOME_COMMITTED
    answer = await waiter
    assert time.monotonic() - started < WOKEN_WITHIN_S
    assert answer.outcome == pb.CLAIM_OUTCOME_DUPLICATE
    assert answer.result == record_id


async def test_sentinel_waiters_are_woken_before_and_after_a_failover(
    topology: tuple[RedisProcess, RedisProcess, Sentinels],
) -> None:
    master, replica, sentinels = topology
    for port in sentinels.ports:
        client = sentinels.client(port)
        wait_for(lambda c=client: len(c.sentinel_slaves(sentinels.name)) == 1, 20, "sentinels to see the replica")
        wait_for(lambda c=client: len(c.sentinel_sentinels(sentinels.name)) == 2, 20, "sentinels to see each other")
    async with running_sidecar(sentinels.url, store_timeout_s=1.0) as sidecar:
        await committed_wakes_waiter(sidecar, sidecar.stub, b"before")
        assert sidecar.wake is not None
        subscriptions = sidecar.wake.subscriptions
        master.kill()
        await asyncio.to_thread(wait_for, lambda: sentinels.master_port() == replica.port, 30, "the promotion")
        await until(lambda: sidecar.wake is not None and sidecar.wake.subscriptions > subscriptions)
        await until(lambda: sidecar.wake is not None and sidecar.wake.subscribed.is_set())

        async def claims_again() -> None:  # the first calls after the kill may still meet the dead master
            for attempt in range(100):
                try:
                    await committed_wakes_waiter(sidecar, sidecar.stub, b"after-%d" % attempt)
                    return
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.2)

        await asyncio.wait_for(claims_again(), 30)


async def test_cluster_waiters_are_woken_by_commits_on_every_master(cluster: LocalCluster) -> None:
    async with running_sidecar(cluster.url) as a, running_sidecar(cluster.url, key_prefix=a.key_prefix) as b:
        assert isinstance(a.store, ClusterStore)
        await a.store.cluster.initialize()
        by_master: dict[str, bytes] = {}
        n = 0
        while len(by_master) < 3:  # one id on each master: most are not the node A's subscriber listens on
            record_id = b"x%d" % n
            n += 1
            node = a.store.cluster.get_node_from_key(record_key(a.key_prefix, NS, record_id))
            by_master.setdefault(node.name, record_id)
        for record_id in by_master.values():
            await committed_wakes_waiter(a, b.stub, record_id)  # held and committed through sidecar B
