"""Cluster batches go out as one pipeline per master; acks, MOVED and ASK are handled per slot group."""

from __future__ import annotations

import os
import random
import signal
from collections import defaultdict

import grpc

from dedup.v1 import dedup_pb2 as pb
from sidecar.domain.keys import record_key
from tests.scale.servers import LocalCluster, Monitor, replication, wait_for
from tests.support.inprocess import RunningSidecar, running_sidecar
from tests.support.redis_server import RedisProcess

ACKED = {"namespaces": {"plain": {}, "acked": {"min_replica_acks": 1, "replica_ack_timeout": "1s"}}}


def _slot(key: str) -> int:
    from redis.crc import key_slot

    return int(key_slot(key.encode()))


def _owner(cluster: LocalCluster, slot: int) -> RedisProcess:
    for start, end, master, *_ in cluster.nodes[0].client().execute_command("CLUSTER", "SLOTS"):
        if int(start) <= slot <= int(end):
            return cluster.by_port(int(master[1]))
    raise AssertionError(f"slot {slot} not covered")


def _replica_online(master: RedisProcess) -> bool:
    return replication(master.client()).get("slave0", {}).get("state") == "online"


async def _check_batch(sidecar: RunningSidecar, ns: str, ids: list[bytes]) -> list[pb.CheckResponse]:
    reply = await sidecar.stub.CheckBatch(
        pb.CheckBatchRequest(items=[pb.CheckRequest(namespace=ns, id=i) for i in ids]), timeout=10
    )
    return list(reply.results)


def _fresh(n: int, rng: random.Random) -> list[bytes]:
    return [rng.randbytes(16) for _ in range(n)]


async def _monitored(cluster: LocalCluster, sidecar: RunningSidecar, ns: str, ids: list[bytes]) -> tuple:
    """The batch's replies, and every master's commands seen while it ran (MONITOR, until an ECHO marker)."""
    masters = cluster.masters()
    monitors = {master.port: Monitor(master, until="ECHO") for master in masters}
    results = await _check_batch(sidecar, ns, ids)
    for master in masters:
        master.client().echo("dedup-test-end")
    return results, {port: monitor.wait() for port, monitor in monitors.items()}


def _ours(commands: list[dict], prefix: str) -> list[dict]:
    return [c for c in commands if c["command"].startswith(("EVALSHA", "WAIT")) and c.get("client_type") != "lua"]


async def test_a_batch_is_one_pipeline_per_master_with_one_script_call_per_slot(cluster: LocalCluster) -> None:
    rng = random.Random(61)
    async with running_sidecar(cluster.url) as sidecar:
        for master in cluster.masters():
            master.client().script_flush()
        # NOSCRIPT on every master: each loads the script, and its calls are sent once more.
        first = await _check_batch(sidecar, "plain", _fresh(100, rng))
        assert [r.outcome for r in first] == [pb.CHECK_OUTCOME_NEW] * 100, first[0]
        ids = _fresh(100, rng)
        results, seen = await _monitored(cluster, sidecar, "plain", ids)
        keys = [record_key(sidecar.key_prefix, "plain", i) for i in ids]
    assert [r.outcome for r in results] == [pb.CHECK_OUTCOME_NEW] * 100
    slots = {_slot(k) for k in keys}
    calls = 0
    for port, commands in seen.items():
        evals = [c for c in _ours(commands, sidecar.key_prefix) if c["command"].startswith("EVALSHA")]
        connections = {(c["client_address"], c["client_port"]) for c in evals}
        assert len(connections) == 1, f"master {port}: script calls on {len(connections)} connections"
        calls += len(evals)
        assert not any(c["command"].startswith("WAIT") for c in commands)  # no acks asked, no WAIT
    assert calls == len(slots)  # one script call per slot, not per item


async def test_replica_acks_wait_per_master_and_fail_only_that_masters_items(cluster: LocalCluster) -> None:
    rng = random.Random(62)
    async with running_sidecar(cluster.url, ACKED) as sidecar:
        for master in cluster.masters():
            wait_for(lambda m=master: _replica_online(m), 30, "an online replica per master")
        await _check_batch(sidecar, "acked", _fresh(100, rng))
        results, seen = await _monitored(cluster, sidecar, "acked", _fresh(100, rng))
        assert [r.outcome for r in results] == [pb.CHECK_OUTCOME_NEW] * 100, [r.error.message for r in results][:3]
        for port, commands in seen.items():
            ours = _ours(commands, sidecar.key_prefix)
            assert ours[-1]["command"] == "WAIT 1 1000", f"master {port}: {[c['command'][:20] for c in ours]}"
            assert len({(c["client_address"], c["client_port"]) for c in ours}) == 1  # WAIT on the writes' connection

        # One master's replica stops acknowledging: only that master's items fail, UNAVAILABLE.
        master = cluster.masters()[0]
        replica_port = int(replication(master.client())["slave0"]["port"])
        replica = cluster.by_port(replica_port)
        assert replica.process is not None
        os.kill(replica.process.pid, signal.SIGSTOP)
        try:
            ids = _fresh(100, rng)
            results = await _check_batch(sidecar, "acked", ids)
        finally:
            os.kill(replica.process.pid, signal.SIGCONT)
        by_owner: dict[int, list[pb.CheckResponse]] = defaultdict(list)
        for record_id, result in zip(ids, results, strict=True):
            owner = _owner(cluster, _slot(record_key(sidecar.key_prefix, "acked", record_id)))
            by_owner[owner.port].append(result)
    for port, answers in by_owner.items():
        if port == master.port:
            assert all(a.HasField("error") for a in answers)
            assert {a.error.code for a in answers} == {grpc.StatusCode.UNAVAILABLE.value[0]}
            assert "0 of 1 required replicas" in answers[0].error.message
        else:
            assert [a.outcome for a in answers] == [pb.CHECK_OUTCOME_NEW] * len(answers), port
    wait_for(lambda: _replica_online(master), 30, "the replica back")


async def test_ask_and_moved_replies_are_retried_once_on_the_right_master(cluster: LocalCluster) -> None:
    """ASK during a slot migration, then MOVED once it is done: both answered correctly, no item error."""
    rng = random.Random(63)
    async with running_sidecar(cluster.url) as sidecar:
        await _check_batch(sidecar, "plain", _fresh(100, rng))  # warm-up: the sidecar has the slot map now
        moving = rng.randbytes(16)
        slot = _slot(record_key(sidecar.key_prefix, "plain", moving))
        source = _owner(cluster, slot)
        target = next(m for m in cluster.masters() if m.port != source.port)
        target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", cluster.node_id(source))
        source.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", cluster.node_id(target))
        try:
            others = [i for i in _fresh(120, rng) if _slot(record_key(sidecar.key_prefix, "plain", i)) != slot][:99]
            results = await _check_batch(sidecar, "plain", [moving, *others])  # the source answers ASK
            assert [r.outcome for r in results] == [pb.CHECK_OUTCOME_NEW] * 100, results[0]
        finally:
            for master in (target, source, *cluster.masters()):
                master.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", cluster.node_id(target))
        wait_for(lambda: _owner(cluster, slot).port == target.port, 30, "the slot to be the target's everywhere")
        assert target.client().exists(record_key(sidecar.key_prefix, "plain", moving))  # written after ASKING
        # The sidecar's slot map still names the source: it answers MOVED; the retry goes to the target.
        results = await _check_batch(sidecar, "plain", [moving, *others[:50]])
        assert [r.outcome for r in results] == [pb.CHECK_OUTCOME_DUPLICATE] * 51, results[0]


async def test_a_master_that_times_out_fails_only_its_items_and_is_not_sent_again(cluster: LocalCluster) -> None:
    rng = random.Random(64)
    async with running_sidecar(cluster.url, store_timeout_s=0.5) as sidecar:
        await _check_batch(sidecar, "plain", _fresh(100, rng))  # warm-up
        paused = cluster.masters()[0]
        ids = _fresh(100, rng)
        owners = [_owner(cluster, _slot(record_key(sidecar.key_prefix, "plain", i))).port for i in ids]
        keys = [record_key(sidecar.key_prefix, "plain", i) for i in ids]
        paused_slots = {_slot(k) for k, p in zip(keys, owners, strict=True) if p == paused.port}
        before = int(paused.client().info("commandstats")["cmdstat_evalsha"]["calls"])
        paused.client().execute_command("CLIENT", "PAUSE", 1500, "ALL")
        results = await _check_batch(sidecar, "plain", ids)
        wait_for(lambda: paused.client().ping(), 10, "the pause to end")
        for owner, result in zip(owners, results, strict=True):
            if owner == paused.port:
                assert result.error.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0], result
            else:
                assert result.outcome == pb.CHECK_OUTCOME_NEW, result
        # The timed-out pipeline is never sent again: at most one script call per slot reached the master.
        after = int(paused.client().info("commandstats")["cmdstat_evalsha"]["calls"])
        assert after - before <= len(paused_slots)
        # And the next batch reaches it again (the slot map refresh after the timeout finds the same master).
        again = await _check_batch(sidecar, "plain", ids)
        assert all(not r.HasField("error") for r in again)
