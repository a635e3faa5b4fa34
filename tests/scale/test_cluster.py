"""Redis Cluster (3 masters + 3 replicas): same outcomes as standalone, keys on every master,
no wrong outcome across a CLUSTER FAILOVER and a resharding."""

from __future__ import annotations

import asyncio
import random
import subprocess
from collections import Counter
from dataclasses import dataclass, field

import grpc

from dedup.v1 import dedup_pb2 as pb
from tests.scale.servers import REDIS_CLI, LocalCluster, replication, wait_for
from tests.support.inprocess import RunningSidecar, running_sidecar
from tests.support.redis_server import RedisProcess

NAMESPACES = ("orders", "payments.charge", "mail")


def _workload(seed: int = 6) -> list[tuple[str, list[tuple[str, bytes]]]]:
    """10,000 random ids: CheckBatch over 7,000, ClaimBatch over 3,000, with repeats inside and across batches."""
    rng = random.Random(seed)
    ids = [(rng.choice(NAMESPACES), rng.randbytes(rng.randint(12, 48))) for _ in range(10_000)]
    assert len(set(ids)) == 10_000
    checked, claimed = ids[:7_000], ids[7_000:]
    ops: list[tuple[str, list[tuple[str, bytes]]]] = []
    for start in range(0, 7_000, 100):
        batch = checked[start : start + 100] + rng.sample(checked[: start + 100], 20)
        rng.shuffle(batch)
        ops.append(("check", batch))
    for start in range(0, 3_000, 100):
        batch = claimed[start : start + 100] + rng.sample(claimed[: start + 100], 10) + rng.sample(checked, 10)
        rng.shuffle(batch)
        ops.append(("claim", batch))
    return ops


async def _run(sidecar: RunningSidecar, ops: list[tuple[str, list[tuple[str, bytes]]]]) -> list[int]:
    outcomes: list[int] = []
    for kind, batch in ops:
        if kind == "check":
            reply = await sidecar.stub.CheckBatch(
                pb.CheckBatchRequest(items=[pb.CheckRequest(namespace=ns, id=i) for ns, i in batch])
            )
        else:
            reply = await sidecar.stub.ClaimBatch(
                pb.ClaimBatchRequest(items=[pb.ClaimRequest(namespace=ns, id=i) for ns, i in batch])
            )
        for result in reply.results:
            assert not result.HasField("error"), result.error
            outcomes.append(result.outcome)
    return outcomes


async def test_same_outcomes_as_standalone_and_keys_on_every_master(
    cluster: LocalCluster, redis_server: RedisProcess
) -> None:
    ops = _workload()
    async with running_sidecar(redis_server.url) as standalone:
        expected = await _run(standalone, ops)
    async with running_sidecar(cluster.url) as clustered:
        got = await _run(clustered, ops)
        prefix = clustered.key_prefix
    assert got == expected
    assert Counter(expected)[pb.CHECK_OUTCOME_DUPLICATE] > 0  # the workload does repeat ids

    per_master = {
        master.port: sum(1 for key in master.client().scan_iter(match=f"{prefix}*", count=1000) if b"#fence" not in key)
        for master in cluster.masters()
    }
    total = sum(per_master.values())
    print(f"\nkeys per master ({total} keys): " + ", ".join(f"{p}: {n}" for p, n in sorted(per_master.items())))
    assert total == 10_000  # records; plus one fencing high-water mark per slot a claim touched (ADR 0002)
    assert all(count > total * 0.25 for count in per_master.values()), per_master


@dataclass
class Ledger:
    """What the test knows about each id, to judge every answer."""

    confirmed: set[tuple[str, bytes]] = field(default_factory=set)  # answered NEW: must be DUPLICATE now
    uncertain: set[tuple[str, bytes]] = field(default_factory=set)  # errored: NEW or DUPLICATE both fine
    errors: Counter[str] = field(default_factory=Counter)
    wrong: list[str] = field(default_factory=list)
    answers: int = 0

    def judge(self, item: tuple[str, bytes], result: pb.CheckResponse) -> None:
        if result.HasField("error"):
            self.errors[str(result.error.code)] += 1
            self.uncertain.add(item)
            return
        self.answers += 1
        if item in self.confirmed:
            if result.outcome != pb.CHECK_OUTCOME_DUPLICATE:
                self.wrong.append(f"{item!r}: {result.outcome} after a confirmed NEW")
        elif item not in self.uncertain and result.outcome != pb.CHECK_OUTCOME_NEW:
            self.wrong.append(f"{item!r}: {result.outcome} for a fresh id")
        self.uncertain.discard(item)
        self.confirmed.add(item)


async def _load(sidecar: RunningSidecar, ledger: Ledger, stop: asyncio.Event, rng: random.Random) -> None:
    while not stop.is_set():
        fresh = [(rng.choice(NAMESPACES), rng.randbytes(16)) for _ in range(40)]
        again = rng.sample(sorted(ledger.confirmed), min(40, len(ledger.confirmed)))
        batch = fresh + again + sorted(ledger.uncertain)[:40]  # errored items are retried
        try:
            reply = await sidecar.stub.CheckBatch(
                pb.CheckBatchRequest(items=[pb.CheckRequest(namespace=ns, id=i) for ns, i in batch]), timeout=10
            )
        except grpc.aio.AioRpcError as err:  # the whole call failed: every item is uncertain
            ledger.errors[f"rpc {err.code().name}"] += 1
            ledger.uncertain.update(batch)
            continue
        for item, result in zip(batch, reply.results, strict=True):
            ledger.judge(item, result)


def _failover_and_reshard(cluster: LocalCluster) -> None:
    replica = next(node for node in cluster.nodes if replication(node.client()).get("role") == "slave")
    replica.client().execute_command("CLUSTER", "FAILOVER")
    wait_for(lambda: replication(replica.client()).get("role") == "master", 30, "the replica to take over")
    wait_for(cluster.healthy, 30, "the cluster to settle after the failover")
    source, target = cluster.masters()[:2]
    subprocess.run(
        [
            REDIS_CLI, "--cluster", "reshard", f"127.0.0.1:{source.port}",
            "--cluster-from", cluster.node_id(source), "--cluster-to", cluster.node_id(target),
            "--cluster-slots", "300", "--cluster-yes",
        ],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip


async def test_no_wrong_outcome_across_failover_and_resharding(cluster: LocalCluster) -> None:
    ledger = Ledger()
    stop = asyncio.Event()
    async with running_sidecar(cluster.url) as sidecar:
        load = asyncio.create_task(_load(sidecar, ledger, stop, random.Random(7)))
        await asyncio.to_thread(wait_for, lambda: ledger.answers > 2_000, 60, "load before the failover")
        await asyncio.to_thread(_failover_and_reshard, cluster)
        before = ledger.answers
        await asyncio.to_thread(wait_for, lambda: ledger.answers > before + 2_000, 60, "load after the reshard")
        stop.set()
        await load
        # Every id ever answered NEW is still a DUPLICATE; errored ones are retried until answered.
        for _ in range(20):
            pending = sorted(ledger.confirmed | ledger.uncertain)
            for start in range(0, len(pending), 400):
                batch = pending[start : start + 400]
                reply = await sidecar.stub.CheckBatch(
                    pb.CheckBatchRequest(items=[pb.CheckRequest(namespace=ns, id=i) for ns, i in batch])
                )
                for item, result in zip(batch, reply.results, strict=True):
                    ledger.judge(item, result)
            if not ledger.uncertain:
                break
    print(f"\nanswers: {ledger.answers}, item errors by code: {dict(ledger.errors)}, ids: {len(ledger.confirmed)}")
    assert not ledger.wrong, ledger.wrong[:10]
    assert not ledger.uncertain


async def test_quota_counters_are_per_slot_and_refuse_beyond_the_share(cluster: LocalCluster) -> None:
    """ADR 0051: in Cluster each slot has its own counter with ceil(limit / 16384); with a limit of
    16384 every slot admits one new record per period, so a second new id in a slot is refused."""
    from redis.crc import key_slot

    from sidecar.domain.keys import record_key

    policies = {"namespaces": {"tenant": {"max_new_records": 16384, "quota_period": "1h"}}}
    async with running_sidecar(cluster.url, policies) as sidecar:
        prefix = sidecar.service._limits.key_prefix
        by_slot: dict[int, list[bytes]] = {}
        for n in range(200_000):  # two ids of one slot, and one id each of many other slots
            ident = f"q{n}".encode()
            by_slot.setdefault(key_slot(record_key(prefix, "tenant", ident).encode()), []).append(ident)
            if any(len(v) >= 2 for v in by_slot.values()) and len(by_slot) >= 50:
                break
        pair = next(v for v in by_slot.values() if len(v) >= 2)
        singles = [v[0] for v in by_slot.values() if len(v) == 1][:40]
        items = [pb.CheckRequest(namespace="tenant", id=i) for i in [*singles, pair[0], pair[1]]]
        reply = await sidecar.stub.CheckBatch(pb.CheckBatchRequest(items=items))
        results = list(reply.results)
        assert all(r.outcome == pb.CHECK_OUTCOME_NEW for r in results[:-1])
        assert results[-1].error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
