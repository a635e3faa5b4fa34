"""Invariant 8: an unsafe store is never written, also when it turns unsafe after an outage.

Redis is stopped and started again on the same port with an evicting maxmemory-policy. The
sidecar (a real process) must go NOT_SERVING, say UNSAFE, and fail every call with UNAVAILABLE
and the reason, without writing anything, also in an `on_store_error: allow` namespace; once
the policy is fixed it serves again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from sidecar.domain.errors import StoreError
from sidecar.redis_store.factory import open_store
from sidecar.redis_store.safety import StoreReport
from sidecar.store_gate import StoreGate
from tests.support.faults import paused
from tests.support.inprocess import unique_prefix
from tests.support.redis_server import RedisProcess
from tests.support.sidecar_process import SidecarProcess

POLICIES = "namespaces:\n  strict: {}\n  lenient: {on_store_error: allow}\n"


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    server.close()


def readiness(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service="dedup.v1.Dedup"), timeout=5).status)


def wait_readiness(channel: grpc.Channel, status: int, within_s: float = 30.0) -> None:
    deadline = time.monotonic() + within_s
    while readiness(channel) != status:
        assert time.monotonic() < deadline, f"readiness never became {status}"
        time.sleep(0.05)


def test_a_store_restarted_with_an_evicting_policy_is_refused_until_fixed(
    own_redis: RedisProcess, tmp_path: Path
) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICIES)
    args = ["--redis-url", own_redis.url, "--key-prefix", unique_prefix(), "--policies", str(policies)]
    sidecar = SidecarProcess([*args, "--health-interval", "200ms"]).start()
    try:
        with grpc.insecure_channel(sidecar.target) as channel:
            stub = dedup_pb2_grpc.DedupStub(channel)
            assert stub.Check(pb.CheckRequest(namespace="strict", id=b"before"), timeout=10).outcome == 1
            wait_readiness(channel, health_pb2.HealthCheckResponse.SERVING)

            own_redis.extra_args = ["--maxmemory-policy", "allkeys-lru"]
            own_redis.restart()  # same port, empty, evicting
            sidecar.wait_log(lambda entry: "UNSAFE" in str(entry.get("msg")))
            wait_readiness(channel, health_pb2.HealthCheckResponse.NOT_SERVING)

            for namespace in ("strict", "lenient"):
                for call, request in (
                    (stub.Check, pb.CheckRequest(namespace=namespace, id=b"after")),
                    (stub.Claim, pb.ClaimRequest(namespace=namespace, id=b"after")),
                    (stub.Commit, pb.CommitRequest(namespace=namespace, id=b"after", fencing_token=1)),
                    (stub.Inspect, pb.InspectRequest(namespace=namespace, id=b"after")),
                ):
                    with pytest.raises(grpc.RpcError) as caught:
                        call(request, timeout=10)  # type: ignore[operator]
                    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
                    assert "allkeys-lru" in caught.value.details()
                batch = stub.CheckBatch(
                    pb.CheckBatchRequest(items=[pb.CheckRequest(namespace=namespace, id=b"b")]), timeout=10
                )
                assert not batch.results[0].degraded
                assert batch.results[0].error.code == grpc.StatusCode.UNAVAILABLE.value[0]
            with own_redis.client() as redis:
                assert redis.dbsize() == 0, "nothing may be written to an unsafe store"

                redis.config_set("maxmemory-policy", "noeviction")
            wait_readiness(channel, health_pb2.HealthCheckResponse.SERVING)
            assert stub.Check(pb.CheckRequest(namespace="strict", id=b"after"), timeout=10).outcome == 1
    finally:
        sidecar.stop()


class CountingGate(StoreGate):
    checks = 0

    async def run_checks(self) -> StoreReport:
        CountingGate.checks += 1
        return await super().run_checks()


async def test_calls_during_an_outage_share_one_store_check(own_redis: RedisProcess) -> None:
    """After a failure every call waits for the store check, but for one check, not one each."""
    store = open_store(own_redis.url, timeout_s=0.5)
    gate = CountingGate(store, allow_unsafe=False)
    try:
        await gate.run_checks()
        CountingGate.checks = 0
        gate.needs_check = True  # as after a failed call
        assert own_redis.process is not None
        with paused(own_redis.process.pid):  # the check hangs until the store timeout
            results = await asyncio.gather(*(gate.ensure_safe() for _ in range(50)), return_exceptions=True)
        assert all(isinstance(r, StoreError) for r in results), results
        assert CountingGate.checks == 1
        await gate.ensure_safe()  # the store answers again: one more check, and calls go through
        assert CountingGate.checks == 2
        assert gate.safe
    finally:
        await store.close()
