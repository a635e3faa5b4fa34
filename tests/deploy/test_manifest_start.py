"""Starts the sidecar exactly as the rendered manifest says, from the Dockerfile-built venv, and uses it.

Same command/args (the image's ENTRYPOINT/CMD unless the container overrides
them), same env (the image's ENV, then the container's; the Redis URL Secret
resolved to a test Redis), volumes as the kubelet lays them out, a read-only
working directory, the securityContext's uid/gid with no_new_privs. Container
ports are mapped to free loopback ports (no network namespace here).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from tests.deploy.manifests import env_value, find, pod_spec, render, sidecar_container
from tests.deploy.pod import Pod, write_configmap_volume
from tests.support.redis_server import RedisProcess, free_port, server_binary

pytestmark = pytest.mark.xdist_group("deploy-image")

SERVING = health_pb2.HealthCheckResponse.SERVING


def _eventually(condition: Callable[[], Any], timeout_s: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except grpc.RpcError as err:
            last = err
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout_s}s (last: {last!r})")


def _health(target: str, service: str) -> int:
    with grpc.insecure_channel(target) as channel:
        request = health_pb2.HealthCheckRequest(service=service)
        return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=2).status)


def _check(target: str, namespace: str, message_id: bytes) -> Any:
    with grpc.insecure_channel(target) as channel:
        return dedup_pb2_grpc.DedupStub(channel).Check(pb.CheckRequest(namespace=namespace, id=message_id), timeout=5)


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    server.close()


def test_sidecar_starts_as_the_manifest_says_and_serves(image_root: Path, own_redis: RedisProcess) -> None:
    objects = render("dev")
    deployment, container = sidecar_container(objects)
    spec = pod_spec(deployment)
    configmap = find(objects, "ConfigMap", "dedup-policies")
    secret = find(objects, "Secret", "dedup-redis")
    assert "url" in secret.get("data", {}) or "url" in secret.get("stringData", {})

    sidecar = Pod(image_root, spec, container)
    api_port, health_port = free_port(), free_port()
    sidecar.map_port(int(env_value(container, "DEDUP_LISTEN").rpartition(":")[2]), api_port)
    sidecar.map_port(container["ports"][0]["containerPort"], health_port)
    sidecar.mount_volumes({"dedup-policies": configmap["data"]})
    process = sidecar.start({("dedup-redis", "url"): own_redis.url}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        health = f"127.0.0.1:{health_port}"
        api = f"127.0.0.1:{api_port}"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            service = container[probe]["grpc"]["service"]
            _eventually(lambda s=service: _health(health, s) == SERVING, what=f"{probe} ({service}) SERVING")
        assert _check(api, "example.orders", b"m-1").outcome == pb.CHECK_OUTCOME_NEW
        assert _check(api, "example.orders", b"m-1").outcome == pb.CHECK_OUTCOME_DUPLICATE
        # The ConfigMap's policies are in force (no `default`): other namespaces are NOT_FOUND ...
        with pytest.raises(grpc.RpcError) as raised:
            _check(api, "example.refunds", b"m-1")
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        # ... until the ConfigMap changes: the kubelet's symlink swap is picked up without a restart.
        policies = yaml.safe_load(configmap["data"]["policies.yaml"])
        policies["namespaces"]["example.refunds"] = {"window": "1h"}
        volume = sidecar.mounts["/etc/dedup/policies"]
        volume.chmod(0o755)
        write_configmap_volume(volume, {"policies.yaml": yaml.safe_dump(policies)}, generation=2)
        volume.chmod(0o555)
        _eventually(lambda: _check(api, "example.refunds", b"m-1").outcome == pb.CHECK_OUTCOME_NEW, what="reload")

        # The example consumer container, as its manifest says, talks to the sidecar.
        consumer_spec = next(c for c in spec["containers"] if c["name"] == "consumer")
        consumer = Pod(image_root, spec, consumer_spec)
        consumer.map_port(int(env_value(container, "DEDUP_LISTEN").rpartition(":")[2]), api_port)
        client = consumer.start({}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert client.stdout is not None
            outcomes: list[str] = []
            for _ in range(30):  # the CLI prints the outcome, then indented details
                line = client.stdout.readline()
                if line and not line.startswith(" "):
                    outcomes.append(line.strip())
                if len(outcomes) == 3 or not line:
                    break
        finally:
            client.terminate()
            client.wait(10)
            consumer.close()
        assert outcomes == ["NEW", "NEW", "NEW"]

        process.terminate()  # the kubelet's SIGTERM (the image's STOPSIGNAL)
        assert process.wait(30) == 0
        assert process.stderr is not None
        logs = process.stderr.read()
        assert '"msg": "stopped"' in logs
        written = [path for path in image_root.rglob("*") if path.lstat().st_uid != 0]
        assert written == [], f"the sidecar wrote into the image: {written}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        sidecar.close()


def test_dev_redis_starts_as_the_manifest_says_and_is_safe(image_root: Path, tmp_path: Path) -> None:
    statefulset = find(render("dev"), "StatefulSet", "dedup-redis")
    args = list(pod_spec(statefulset)["containers"][0]["args"])
    port = free_port()
    args[args.index("--port") + 1] = str(port)
    args[args.index("--dir") + 1] = str(tmp_path)
    server = server_binary()
    process = subprocess.Popen([server, *args[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        cli = image_root / "opt" / "dedup" / "bin" / "dedup-sidecar"
        url = f"redis://127.0.0.1:{port}/0"

        def check_store() -> subprocess.CompletedProcess[str] | None:
            command = [str(cli), "check-store", "--redis-url", url]
            result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
            return None if result.returncode == 2 else result  # 2: not reachable yet

        result = _eventually(check_store, what="the dev Redis answers")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "verdict: safe" in result.stdout
    finally:
        process.terminate()
        process.wait(10)
