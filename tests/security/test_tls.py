"""TLS and mTLS on the gRPC listener, certificate rotation, and the plaintext rule."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from sidecar.domain.policy import BUILT_IN_POLICIES
from sidecar.settings import Settings, SettingsError
from sidecar.transport.security import build_authorizer
from tests.security.conftest import Pki, secure_sidecar, tls_channel
from tests.support.certs import CA
from tests.support.inprocess import StaticPolicies
from tests.support.redis_server import RedisProcess

POLICIES = {"namespaces": {"a": {"allowed_identities": ["cn:client-a"]}}}


async def _check(channel: grpc.aio.Channel, namespace: str = "a") -> grpc.StatusCode:
    try:
        await dedup_pb2_grpc.DedupStub(channel).Check(pb.CheckRequest(namespace=namespace, id=b"x"), timeout=5)
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def _mtls_settings(pki: Pki, tmp_path: Path) -> dict[str, object]:
    cert, key = pki.ca.issue("sidecar", server=True).write(tmp_path, "server")
    ca = tmp_path / "client-ca.pem"
    ca.write_bytes(pki.ca.pem)
    return {
        "tls_cert": str(cert),
        "tls_key": str(key),
        "tls_client_ca": str(ca),
        "tls_require_client_auth": True,
    }


async def test_mtls_admits_a_good_client_and_refuses_no_cert_other_ca_and_expired(
    redis_server: RedisProcess, pki: Pki, tmp_path: Path
) -> None:
    good = pki.ca.issue("client-a")
    foreign = pki.other_ca.issue("client-a")
    expired = pki.ca.issue("client-a", expired=True)
    async with secure_sidecar(redis_server.url, POLICIES, **_mtls_settings(pki, tmp_path)) as sidecar:
        async with tls_channel(sidecar.target, pki.ca.pem, good.cert_pem, good.key_pem) as channel:
            assert await _check(channel) == grpc.StatusCode.OK
        async with tls_channel(sidecar.target, pki.ca.pem) as channel:
            assert await _check(channel) == grpc.StatusCode.UNAVAILABLE
        async with tls_channel(sidecar.target, pki.ca.pem, foreign.cert_pem, foreign.key_pem) as channel:
            assert await _check(channel) == grpc.StatusCode.UNAVAILABLE
        async with tls_channel(sidecar.target, pki.ca.pem, expired.cert_pem, expired.key_pem) as channel:
            assert await _check(channel) == grpc.StatusCode.UNAVAILABLE
        async with grpc.aio.insecure_channel(sidecar.target) as channel:
            assert await _check(channel) == grpc.StatusCode.UNAVAILABLE


async def test_rotated_certificate_is_served_to_the_next_connection(
    redis_server: RedisProcess, pki: Pki, tmp_path: Path
) -> None:
    cert, key = pki.ca.issue("sidecar", server=True).write(tmp_path, "server")
    async with secure_sidecar(redis_server.url, tls_cert=str(cert), tls_key=str(key), tls_reload=0) as sidecar:
        async with tls_channel(sidecar.target, pki.ca.pem) as channel:
            assert await _check(channel) == grpc.StatusCode.OK
        rotated_ca = CA("rotated CA")
        new = rotated_ca.issue("sidecar", server=True)
        key.write_bytes(new.key_pem)  # key first, then cert: a torn pair is not PEM-complete together
        cert.write_bytes(new.cert_pem)
        async with tls_channel(sidecar.target, rotated_ca.pem) as channel:
            assert await _check(channel) == grpc.StatusCode.OK  # the new certificate, no restart
        async with tls_channel(sidecar.target, pki.ca.pem) as channel:
            assert await _check(channel) == grpc.StatusCode.UNAVAILABLE  # the old one is gone


def test_plaintext_is_refused_on_a_non_loopback_address_unless_forced(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="allow-insecure-listen"):
        Settings(listen="0.0.0.0:50051")
    assert Settings(listen="0.0.0.0:50051", allow_insecure_listen=True).allow_insecure_listen
    assert Settings(listen="0.0.0.0:50051", tls_cert="c.pem", tls_key="k.pem", tls_client_ca="ca.pem").tls_cert
    assert Settings(listen="127.0.0.1:50051").listen
    assert Settings(listen="", unix_socket=str(tmp_path / "s.sock")).unix_socket
    with pytest.raises(SettingsError, match="tls-key"):
        Settings(tls_cert="c.pem")
    with pytest.raises(SettingsError, match="tls-client-ca"):
        Settings(tls_cert="c.pem", tls_key="k.pem", tls_require_client_auth=True)


def test_tls_on_a_non_loopback_address_needs_an_identity_source_or_allow_anonymous(tmp_path: Path) -> None:
    tls = {"listen": "0.0.0.0:50051", "tls_cert": "c.pem", "tls_key": "k.pem"}
    with pytest.raises(SettingsError, match="allow-anonymous"):
        Settings(**tls)
    assert Settings(**tls, tls_client_ca="ca.pem").tls_client_ca
    assert Settings(**tls, auth_tokens_dir=str(tmp_path)).auth_tokens_dir
    assert Settings(**tls, allow_anonymous=True).allow_anonymous
    assert Settings(**{**tls, "listen": "127.0.0.1:50051"}).tls_cert  # loopback: no identities needed


def test_allow_anonymous_is_said_in_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(listen="0.0.0.0:50051", tls_cert="c.pem", tls_key="k.pem", allow_anonymous=True)
    with caplog.at_level(logging.WARNING, logger="dedup.security"):
        build_authorizer(settings, StaticPolicies(BUILT_IN_POLICIES))
    assert any("ANONYMOUS ACCESS" in r.getMessage() for r in caplog.records)
