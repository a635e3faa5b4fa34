"""--health-listen: a second server with only grpc.health.v1, for Kubernetes grpc probes."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from tests.support.redis_server import RedisProcess, free_port
from tests.support.sidecar_process import SidecarProcess

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _status(target: str, service: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def _health_target(sidecar: SidecarProcess) -> str:
    entry = sidecar.wait_log(lambda entry: entry.get("msg") == "serving")
    target = str(entry["health_listen"])
    assert target.startswith("127.0.0.1:")
    assert target != sidecar.target
    return target


def _reflected_services(target: str) -> set[str]:
    with grpc.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = stub.ServerReflectionInfo(iter([request]), timeout=5)
        return {service.name for response in responses for service in response.list_services_response.service}


@pytest.fixture
def sidecar_with_health_port(redis_server: RedisProcess) -> Iterator[SidecarProcess]:
    sidecar = SidecarProcess(["--redis-url", redis_server.url, "--health-listen", "127.0.0.1:0"]).start()
    yield sidecar
    sidecar.stop()


def test_health_port_reports_readiness_and_liveness(sidecar_with_health_port: SidecarProcess) -> None:
    target = _health_target(sidecar_with_health_port)
    for service in ("", "dedup.v1.Dedup", "liveness"):
        assert _status(target, service) == SERVING


def test_health_port_serves_nothing_but_health(sidecar_with_health_port: SidecarProcess) -> None:
    target = _health_target(sidecar_with_health_port)
    assert _reflected_services(target) == {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as raised:
        dedup_pb2_grpc.DedupStub(channel).Check(pb.CheckRequest(namespace="orders", id=b"x"), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with grpc.insecure_channel(sidecar_with_health_port.target) as channel:
        response = dedup_pb2_grpc.DedupStub(channel).Check(pb.CheckRequest(namespace="orders", id=b"x"), timeout=5)
    assert response.outcome in (pb.CHECK_OUTCOME_NEW, pb.CHECK_OUTCOME_DUPLICATE)


def test_liveness_does_not_depend_on_redis() -> None:
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    sidecar = SidecarProcess(["--redis-url", dead_redis, "--health-listen", "127.0.0.1:0"]).start()
    try:
        target = _health_target(sidecar)
        assert _status(target, "liveness") == SERVING
        assert _status(target, "") == NOT_SERVING
        assert _status(target, "dedup.v1.Dedup") == NOT_SERVING
    finally:
        assert sidecar.stop() == 0
