"""The operator CLI over TLS and mTLS: `dedup-sidecar check` with --tls-* flags or DEDUP_CLIENT_* env,
against a real sidecar process that requires client certificates."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.certs import CA
from tests.support.redis_server import RedisProcess
from tests.support.sidecar_process import SidecarProcess

IDENTITY = "spiffe://test.local/ns/dedup-example/sa/operator"
NAMESPACE = "cli.orders"
EXAMPLE_RUN = ("--unique", "5", "--redeliveries", "3")


@dataclass(frozen=True)
class Mtls:
    target: str
    ca: Path
    cert: Path
    key: Path
    stranger_cert: Path
    stranger_key: Path
    other_ca: Path


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mtls]:
    directory = tmp_path_factory.mktemp("cli-tls")
    ca, other = CA("cli test CA"), CA("another CA")
    (directory / "ca.crt").write_bytes(ca.pem)
    (directory / "other-ca.crt").write_bytes(other.pem)
    # The sidecar's certificate names only `dedup-sidecar`: clients dialing 127.0.0.1 need --server-name.
    server_cert, server_key = ca.issue("dedup-sidecar", dns=("dedup-sidecar",)).write(directory, "server")
    cert, key = ca.issue("operator", uri=IDENTITY).write(directory, "client")
    stranger_cert, stranger_key = ca.issue("stranger", uri="spiffe://test.local/ns/x/sa/y").write(directory, "x")
    policies = directory / "policies.yaml"
    policies.write_text(yaml.safe_dump({"namespaces": {NAMESPACE: {"window": "1h", "allowed_identities": [IDENTITY]}}}))
    redis = RedisProcess().start()
    sidecar = SidecarProcess(
        [
            "--redis-url",
            redis.url,
            "--policies",
            str(policies),
            "--tls-cert",
            str(server_cert),
            "--tls-key",
            str(server_key),
            "--tls-client-ca",
            str(directory / "ca.crt"),
            "--tls-require-client-auth",
        ]
    )
    try:
        sidecar.start()
        yield Mtls(
            sidecar.target, directory / "ca.crt", cert, key, stranger_cert, stranger_key, directory / "other-ca.crt"
        )
    finally:
        sidecar.stop()
        redis.close()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("DEDUP_")}
    return subprocess.run(
        [sys.executable, "-m", "sidecar", *args],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_over_mtls_with_flags(mtls: Mtls) -> None:
    flags = ["--target", mtls.target, "--tls-ca", str(mtls.ca), "--tls-cert", str(mtls.cert)]
    flags += ["--tls-key", str(mtls.key), "--server-name", "dedup-sidecar"]
    first = cli("check", NAMESPACE, "flags-1", *flags)
    assert (first.returncode, first.stdout.splitlines()[0]) == (0, "NEW"), first.stderr
    again = cli("check", NAMESPACE, "flags-1", *flags)
    assert (again.returncode, again.stdout.splitlines()[0]) == (10, "DUPLICATE"), again.stderr


def test_check_over_mtls_from_the_environment(mtls: Mtls) -> None:
    env = {
        "DEDUP_TARGET": mtls.target,
        "DEDUP_CLIENT_TLS_CA": str(mtls.ca),
        "DEDUP_CLIENT_TLS_CERT": str(mtls.cert),
        "DEDUP_CLIENT_TLS_KEY": str(mtls.key),
        "DEDUP_CLIENT_SERVER_NAME": "dedup-sidecar",
    }
    result = cli("check", NAMESPACE, "env-1", env=env)
    assert (result.returncode, result.stdout.splitlines()[0]) == (0, "NEW"), result.stderr
    # The server's own variables (a CLI run in the sidecar's container) are not client settings.
    server_side = {"DEDUP_TARGET": mtls.target, "DEDUP_TLS_CERT": str(mtls.cert), "DEDUP_TLS_KEY": str(mtls.key)}
    plain = cli("check", NAMESPACE, "env-1", env=server_side)
    assert plain.returncode == 3, plain.stdout + plain.stderr


def test_refusals_are_clear(mtls: Mtls) -> None:
    base = ["--target", mtls.target, "--server-name", "dedup-sidecar"]
    no_cert = cli("check", NAMESPACE, "r-1", *base, "--tls-ca", str(mtls.ca))
    assert no_cert.returncode == 3
    assert no_cert.stderr.startswith("error: UNAVAILABLE"), no_cert.stderr
    wrong_ca = cli("check", NAMESPACE, "r-1", *base, "--tls-ca", str(mtls.other_ca))
    wrong_ca_with_cert = cli(
        "check",
        NAMESPACE,
        "r-1",
        *base,
        "--tls-ca",
        str(mtls.other_ca),
        "--tls-cert",
        str(mtls.cert),
        "--tls-key",
        str(mtls.key),
    )
    assert wrong_ca.returncode == wrong_ca_with_cert.returncode == 3
    no_name = cli(
        "check",
        NAMESPACE,
        "r-1",
        "--target",
        mtls.target,
        "--tls-ca",
        str(mtls.ca),
        "--tls-cert",
        str(mtls.cert),
        "--tls-key",
        str(mtls.key),
    )
    assert no_name.returncode == 3, "the certificate does not name 127.0.0.1"
    stranger = cli(
        "check",
        NAMESPACE,
        "r-1",
        *base,
        "--tls-ca",
        str(mtls.ca),
        "--tls-cert",
        str(mtls.stranger_cert),
        "--tls-key",
        str(mtls.stranger_key),
    )
    assert stranger.returncode == 3
    assert "PERMISSION_DENIED" in stranger.stderr


def test_usage_errors_exit_2_without_a_traceback(tmp_path: Path) -> None:
    half = cli("check", NAMESPACE, "u-1", "--tls-cert", str(tmp_path / "c.crt"))
    assert half.returncode == 2
    assert half.stderr.strip() == "error: --tls-cert and --tls-key go together (a client certificate needs its key)"
    name_only = cli("check", NAMESPACE, "u-1", "--server-name", "x")
    assert name_only.returncode == 2
    assert "needs TLS" in name_only.stderr
    missing = cli("check", NAMESPACE, "u-1", "--tls-ca", str(tmp_path / "absent.crt"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("error: cannot read the CA bundle (--tls-ca)"), missing.stderr
    assert "Traceback" not in half.stderr + name_only.stderr + missing.stderr


def test_python_client_over_mtls_from_files_and_environment(mtls: Mtls) -> None:
    from dedup_client import DedupClient, PermissionDeniedError
    from dedup_client.results import CheckOutcome
    from dedup_client.tls import ClientTls

    tls = ClientTls(ca=mtls.ca, cert=mtls.cert, key=mtls.key, server_name="dedup-sidecar")
    with DedupClient(mtls.target, credentials=tls.credentials(), options=tls.options(), transport="unary") as client:
        assert client.check(NAMESPACE, "py-1").outcome is CheckOutcome.NEW
        assert client.check(NAMESPACE, "py-1").outcome is CheckOutcome.DUPLICATE
    env = {
        "DEDUP_CLIENT_TLS_CA": str(mtls.ca),
        "DEDUP_CLIENT_TLS_CERT": str(mtls.stranger_cert),
        "DEDUP_CLIENT_TLS_KEY": str(mtls.stranger_key),
        "DEDUP_CLIENT_SERVER_NAME": "dedup-sidecar",
    }
    stranger = ClientTls.from_env(env)
    assert stranger.enabled
    with (
        DedupClient(mtls.target, credentials=stranger.credentials(), options=stranger.options()) as client,
        pytest.raises(PermissionDeniedError),
    ):
        client.check(NAMESPACE, "py-2")
    assert not ClientTls.from_env({}).enabled
    with pytest.raises(ValueError, match="go together"):
        ClientTls(cert=mtls.cert)


def test_python_example_consumer_over_mtls_from_the_environment(mtls: Mtls) -> None:
    from tests.deploy.manifests import REPO

    env = {
        "DEDUP_CLIENT_TLS_CA": str(mtls.ca),
        "DEDUP_CLIENT_TLS_CERT": str(mtls.cert),
        "DEDUP_CLIENT_TLS_KEY": str(mtls.key),
        "DEDUP_CLIENT_SERVER_NAME": "dedup-sidecar",
    }
    environ = {key: value for key, value in os.environ.items() if not key.startswith("DEDUP_")}
    example = REPO / "clients" / "python" / "examples" / "consumer.py"
    result = subprocess.run(
        [sys.executable, str(example), "--target", mtls.target, "--namespace", NAMESPACE, *EXAMPLE_RUN],
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "processed=5 " in result.stdout
