"""Redis over TLS (`rediss://`): CA verification, a client certificate (mutual TLS to Redis) and
the minimal ACL user from docs/security.md, against a real TLS-enabled redis-server."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from tests.security.conftest import Pki
from tests.support.redis_server import RedisProcess, free_port
from tests.support.sidecar_process import SidecarProcess

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"
PASSWORD = "tls-test-secret"


@dataclass(frozen=True)
class TlsRedis:
    server: RedisProcess
    tls_port: int
    ca: Path
    client_cert: Path
    client_key: Path

    def url(self, *, user: str = "dedup", ca: Path | None = None, client_cert: bool = True) -> str:
        query = f"ssl_ca_certs={ca or self.ca}"
        if client_cert:
            query += f"&ssl_certfile={self.client_cert}&ssl_keyfile={self.client_key}"
        return f"rediss://{user}:{PASSWORD}@127.0.0.1:{self.tls_port}/0?{query}"


def documented_acl() -> list[str]:
    """The `ACL SETUSER dedup ...` line of docs/security.md, with the test's password."""
    match = re.search(r"^ACL SETUSER dedup .*$", DOCS.read_text(), re.MULTILINE)
    assert match, "docs/security.md lost its ACL line"
    return match.group(0).replace(">CHANGE-ME", f">{PASSWORD}").split()[1:]


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    from tests.support.certs import CA

    directory = tmp_path_factory.mktemp("redis-tls")
    ca = CA("redis test CA")
    (directory / "ca.crt").write_bytes(ca.pem)
    server_cert, server_key = ca.issue("redis", server=True).write(directory, "server")
    client_cert, client_key = ca.issue("dedup-sidecar").write(directory, "client")
    tls_port = free_port()
    server = RedisProcess(
        "--tls-port",
        str(tls_port),
        "--tls-cert-file",
        str(server_cert),
        "--tls-key-file",
        str(server_key),
        "--tls-ca-cert-file",
        str(directory / "ca.crt"),
        "--tls-auth-clients",
        "yes",
    ).start()  # fmt: skip  (the plaintext port is the test's admin door, loopback only)
    try:
        server.client().execute_command("ACL", *documented_acl())
        yield TlsRedis(server, tls_port, directory / "ca.crt", client_cert, client_key)
    finally:
        server.close()


def _check_store(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "check-store", "--redis-url", url, "--store-timeout", "3s"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_check_store_over_mutual_tls_with_the_documented_acl_user(tls_redis: TlsRedis) -> None:
    done = _check_store(tls_redis.url())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: safe" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr  # the URL is redacted


@pytest.mark.parametrize("case", ["no client certificate", "server from another CA", "wrong password"])
def test_redis_tls_refuses_what_it_should(tls_redis: TlsRedis, pki: Pki, tmp_path: Path, case: str) -> None:
    if case == "no client certificate":
        url = tls_redis.url(client_cert=False)
    elif case == "server from another CA":
        other = tmp_path / "other-ca.crt"
        other.write_bytes(pki.other_ca.pem)
        url = tls_redis.url(ca=other)
    else:
        url = tls_redis.url().replace(PASSWORD, "wrong")
    done = _check_store(url)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "unreachable" in done.stdout


async def test_sidecar_serves_over_redis_mutual_tls_with_the_acl_user(tls_redis: TlsRedis) -> None:
    policies = tls_redis.ca.parent / "policies.yaml"
    policies.write_text("namespaces:\n  tls:\n    max_new_records: 100\n")  # quotas run under the ACL too
    sidecar = SidecarProcess(["--redis-url", tls_redis.url(), "--policies", str(policies)]).start()
    try:
        assert not any(PASSWORD in line for line in sidecar.raw_lines)
        async with grpc.aio.insecure_channel(sidecar.target) as channel:
            stub = dedup_pb2_grpc.DedupStub(channel)
            first = await stub.Check(pb.CheckRequest(namespace="tls", id=b"m1"), timeout=5)
            again = await stub.Check(pb.CheckRequest(namespace="tls", id=b"m1"), timeout=5)
            assert (first.outcome, again.outcome) == (pb.CHECK_OUTCOME_NEW, pb.CHECK_OUTCOME_DUPLICATE)
            claimed = await stub.Claim(pb.ClaimRequest(namespace="tls", id=b"m2"), timeout=5)
            assert claimed.outcome == pb.CLAIM_OUTCOME_ACQUIRED
            committed = await stub.Commit(
                pb.CommitRequest(namespace="tls", id=b"m2", fencing_token=claimed.fencing_token), timeout=5
            )
            assert committed.outcome == pb.COMMIT_OUTCOME_COMMITTED
            inspected = await stub.Inspect(pb.InspectRequest(namespace="tls", id=b"m2"), timeout=5)
            assert inspected.state == pb.RECORD_STATE_DONE
            forgotten = await stub.Forget(pb.ForgetRequest(namespace="tls", id=b"m2"), timeout=5)
            assert forgotten.outcome == pb.FORGET_OUTCOME_FORGOTTEN
        # Every connection of the sidecar is the ACL user's, on the TLS port.
        clients = tls_redis.server.client().execute_command("CLIENT", "LIST").decode().splitlines()
        ours = [line for line in clients if "name=dedup-sidecar" in line]
        assert ours
        assert all("user=dedup " in line and f"laddr=127.0.0.1:{tls_redis.tls_port} " in line for line in ours), ours
    finally:
        sidecar.stop()
