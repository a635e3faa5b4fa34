"""Starts every overlay's sidecar exactly as the rendered manifest says, from the Dockerfile-built venv, and uses it.

Same command/args (the image's ENTRYPOINT/CMD unless the container overrides
them), same env (the image's ENV, then the container's; Secrets resolved to test
values), volumes as the kubelet lays them out (ConfigMaps; Secrets with their
defaultMode, items and optional, group-owned by the pod's fsGroup), a read-only
working directory, the securityContext's uid/gid plus the fsGroup as supplementary
group, with no_new_privs. Container ports are mapped to free loopback ports (no
network namespace here). Where the overlay says so: mTLS on the API (the test and
the example consumer present client certificates) and Redis over TLS (rediss://,
verified against the mounted CA).
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from tests.deploy.manifests import OVERLAYS, Object, env_value, find, pod_spec, render, sidecar_container
from tests.deploy.pki import OverlayPki, allowed_identity, server_name
from tests.deploy.pod import Pod, write_configmap_volume
from tests.support.certs import Issued
from tests.support.redis_server import RedisProcess, free_port, server_binary

pytestmark = pytest.mark.xdist_group("deploy-image")

SERVING = health_pb2.HealthCheckResponse.SERVING
REDIS_PASSWORD = "start-test-secret"


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


@dataclass(frozen=True)
class Api:
    """How the test reaches the sidecar's dedup API: plaintext, or TLS with a client certificate."""

    target: str
    ca_pem: bytes | None = None
    client: Issued | None = None
    server_name: str = ""

    def channel(self, client: Issued | None = None) -> grpc.Channel:
        if self.ca_pem is None:
            return grpc.insecure_channel(self.target)
        issued = client or self.client
        assert issued is not None
        credentials = grpc.ssl_channel_credentials(self.ca_pem, issued.key_pem, issued.cert_pem)
        return grpc.secure_channel(self.target, credentials, [("grpc.ssl_target_name_override", self.server_name)])

    def check(self, namespace: str, message_id: bytes, client: Issued | None = None) -> Any:
        with self.channel(client) as channel:
            request = pb.CheckRequest(namespace=namespace, id=message_id)
            return dedup_pb2_grpc.DedupStub(channel).Check(request, timeout=5)


@dataclass
class Redis:
    url: str  # as the Secret holds it (container paths)
    process: RedisProcess
    password: str | None = None

    def admin(self) -> redis.Redis:
        """The test's own plaintext loopback connection (the sidecar uses `url`)."""
        return redis.Redis(host="127.0.0.1", port=self.process.port, password=self.password, socket_timeout=5)


def _redis(stack: ExitStack, sidecar: Object, spec: Object, pki: OverlayPki, tmp: Path) -> tuple[Redis, dict[str, Any]]:
    """A real Redis as the overlay wants it, and the `dedup-redis` Secret's data for it."""
    mounts = {m["name"]: m["mountPath"] for m in sidecar.get("volumeMounts") or []}
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    ca_mount = next(
        (
            mounts[name]
            for name, v in volumes.items()
            if name in mounts and v.get("secret", {}).get("secretName") == "dedup-redis"
        ),
        None,
    )
    if ca_mount is None:  # dev-like: plaintext Redis in the pod's network
        server = RedisProcess().start()
        stack.callback(server.close)
        return Redis(server.url, server), {"url": server.url}
    # The overlay mounts the Redis CA: Redis over TLS, verified against it, with a password.
    cert, key = pki.redis_ca.issue("redis", server=True).write(tmp, "redis")
    (tmp / "redis-ca.crt").write_bytes(pki.redis_ca.pem)
    tls_port = free_port()
    server = RedisProcess(
        "--tls-port",
        str(tls_port),
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(tmp / "redis-ca.crt"),
        "--tls-auth-clients",
        "no",
    ).start()  # fmt: skip  (the plaintext port is the test's own door, loopback only)
    stack.callback(server.close)
    server.client().config_set("requirepass", REDIS_PASSWORD)
    url = f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{tls_port}/0?ssl_ca_certs={ca_mount}/ca.crt"
    return Redis(url, server, REDIS_PASSWORD), {"url": url, "ca.crt": pki.redis_ca.pem}


def _start(
    stack: ExitStack, image_root: Path, overlay: str, tmp: Path, objects: list[Object] | None = None
) -> tuple[Pod, subprocess.Popen[str], Api, dict[str, Any]]:
    """Starts the overlay's sidecar; returns it, its process, how to reach its API, and the test's context."""
    objects = objects if objects is not None else render(overlay)
    deployment, container = sidecar_container(objects)
    spec = pod_spec(deployment)
    consumer = next(c for c in spec["containers"] if c["name"] == "consumer")
    configmap = find(objects, "ConfigMap", "dedup-policies")
    pki = OverlayPki()
    redis, redis_secret = _redis(stack, container, spec, pki, tmp)
    secrets: dict[str, dict[str, Any]] = {"dedup-redis": redis_secret}
    mtls = bool(env_value(container, "DEDUP_TLS_CLIENT_CA"))
    client: Issued | None = None
    if env_value(container, "DEDUP_TLS_CERT"):
        name = server_name(consumer)
        secrets["dedup-tls"] = pki.tls_secret(pki.server(name), pki.api_ca)
        client = pki.client(allowed_identity(objects) if mtls else "spiffe://test/anyone")
        secrets["example-consumer-tls"] = pki.tls_secret(client, pki.api_ca)

    sidecar = Pod(image_root, spec, container)
    stack.callback(sidecar.close)
    ports = {port["name"]: free_port() for port in container["ports"]}
    for port in container["ports"]:
        sidecar.map_port(port["containerPort"], ports[port["name"]])
    health_port = ports["dedup-health"]
    listen = env_value(container, "DEDUP_LISTEN")
    api_port = free_port()
    if listen:
        sidecar.map_port(int(listen.rpartition(":")[2]), api_port)
    sidecar.mount_volumes({"dedup-policies": configmap["data"]}, secrets)
    process = sidecar.start({("dedup-redis", "url"): redis.url}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop() -> None:
        if process.poll() is None:
            process.kill()
            process.wait()

    stack.callback(stop)
    if listen:
        target = f"127.0.0.1:{api_port}"
    else:
        target = "unix:" + sidecar.environment({("dedup-redis", "url"): redis.url})["DEDUP_UNIX_SOCKET"]
    api = Api(target)
    if client is not None:
        api = Api(target, pki.api_ca.pem, client, server_name(consumer))
    context = {
        "objects": objects, "spec": spec, "container": container, "consumer": consumer, "configmap": configmap,
        "secrets": secrets, "health": f"127.0.0.1:{health_port}", "api_port": api_port, "mtls": mtls, "pki": pki,
        "redis": redis, "ports": ports,
    }  # fmt: skip
    return sidecar, process, api, context


def _consumer_outcomes(image_root: Path, sidecar: Pod, context: dict[str, Any]) -> tuple[list[str], str]:
    """Runs the example consumer container as its manifest says; its first three outcomes and stderr."""
    spec, container = context["spec"], context["container"]
    consumer = Pod(image_root, spec, context["consumer"], shared=sidecar.volumes)
    listen = env_value(container, "DEDUP_LISTEN")
    if listen:
        consumer.map_port(int(listen.rpartition(":")[2]), context["api_port"])
    consumer.mount_volumes({"dedup-policies": context["configmap"]["data"]}, context["secrets"])
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
    assert client.stderr is not None
    return outcomes, client.stderr.read()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_starts_as_the_manifest_says_and_serves(image_root: Path, overlay: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        sidecar, process, api, context = _start(stack, image_root, overlay, tmp_path)
        container = context["container"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            service = container[probe]["grpc"]["service"]
            _eventually(
                lambda s=service: _health(context["health"], s) == SERVING,
                what=f"{probe} ({service}) SERVING; stderr so far is in the process",
            )
        assert api.check("example.orders", b"m-1").outcome == pb.CHECK_OUTCOME_NEW
        assert api.check("example.orders", b"m-1").outcome == pb.CHECK_OUTCOME_DUPLICATE
        # Where the overlay says Redis is TLS, the record went over TLS to this Redis.
        assert context["redis"].admin().dbsize() > 0
        if context["mtls"]:
            # A certificate from the same CA whose identity no policy allows is denied ...
            stranger = context["pki"].api_ca.issue("stranger", uri="spiffe://cluster.local/ns/other/sa/other")
            with pytest.raises(grpc.RpcError) as denied:
                api.check("example.orders", b"m-2", client=stranger)
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
            # ... and a client without a certificate does not get past the handshake.
            bare = grpc.ssl_channel_credentials(context["pki"].api_ca.pem)
            options = [("grpc.ssl_target_name_override", api.server_name)]
            with grpc.secure_channel(api.target, bare, options) as channel, pytest.raises(grpc.RpcError) as refused:
                dedup_pb2_grpc.DedupStub(channel).Check(
                    pb.CheckRequest(namespace="example.orders", id=b"m-3"), timeout=5
                )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        if "dedup-metrics" in context["ports"]:  # components/prometheus: the scrape port answers
            url = f"http://127.0.0.1:{context['ports']['dedup-metrics']}/metrics"
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
                assert b"# HELP" in response.read()

        # The ConfigMap's policies are in force (no `default`): other namespaces are refused ...
        unknown = grpc.StatusCode.PERMISSION_DENIED if context["mtls"] else grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as raised:
            api.check("example.refunds", b"m-1")
        assert raised.value.code() == unknown
        # ... until the ConfigMap changes: the kubelet's symlink swap is picked up without a restart.
        policies = yaml.safe_load(context["configmap"]["data"]["policies.yaml"])
        orders = policies["namespaces"]["example.orders"]
        policies["namespaces"]["example.refunds"] = {"window": "1h"} | (
            {"allowed_identities": orders["allowed_identities"]} if "allowed_identities" in orders else {}
        )
        volume = sidecar.mounts["/etc/dedup/policies"]
        volume.chmod(0o755)
        write_configmap_volume(volume, {"policies.yaml": yaml.safe_dump(policies)}, generation=2)
        volume.chmod(0o555)
        _eventually(lambda: api.check("example.refunds", b"m-1").outcome == pb.CHECK_OUTCOME_NEW, what="reload")

        # The example consumer container, as its manifest says (its env, its mounted client
        # certificate where the overlay gives it one), talks to the sidecar through the CLI.
        outcomes, stderr = _consumer_outcomes(image_root, sidecar, context)
        assert outcomes == ["NEW", "NEW", "NEW"], stderr

        process.terminate()  # the kubelet's SIGTERM (the image's STOPSIGNAL)
        assert process.wait(30) == 0
        assert process.stderr is not None
        logs = process.stderr.read()
        assert '"msg": "stopped"' in logs
        assert "Traceback" not in logs
        written = [path for path in image_root.rglob("*") if path.lstat().st_uid != 0]
        assert written == [], f"the sidecar wrote into the image: {written}"


def test_the_start_test_would_catch_an_unreadable_key(image_root: Path, tmp_path: Path) -> None:
    """The issue's failure, reproduced: production without the pod's fsGroup leaves the 0440 Secret
    files root:root, and the sidecar (uid 10001) cannot read its key. Shows the simulation is faithful."""
    objects = render("production")
    deployment, _ = sidecar_container(objects)
    pod_spec(deployment)["securityContext"].pop("fsGroup")
    with ExitStack() as stack:
        _, process, _, _ = _start(stack, image_root, "production", tmp_path, objects)
        assert process.wait(30) != 0
        assert process.stderr is not None
        assert "permission denied" in process.stderr.read().lower()


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
