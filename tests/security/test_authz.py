"""Authorisation: identities -> namespaces, Forget for admins, deny by default, no detail leak, audit."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from sidecar.domain.authz import AccessRules, Caller
from sidecar.domain.errors import PolicyError
from sidecar.domain.identities import identity_problem
from sidecar.domain.policy import parse_policies
from sidecar.settings import Settings, SettingsError
from tests.security.conftest import Pki, secure_sidecar, tls_channel
from tests.support.redis_server import RedisProcess

POLICIES = {
    "namespaces": {
        "a": {"allowed_identities": ["token:team-a", "spiffe://test/client-a"]},
        "b": {"allowed_identities": ["token:team-b"]},
    }
}


def _tokens(tmp_path: Path) -> Path:
    directory = tmp_path / "tokens"
    directory.mkdir()
    (directory / "team-a").write_text("token-of-a\n")
    (directory / "ops").write_text("token-of-ops")
    (directory / "..data").mkdir()  # a mounted Secret's bookkeeping is ignored
    return directory


async def _call(
    stub: dedup_pb2_grpc.DedupStub, method: str, request: object, token: str = ""
) -> grpc.aio.AioRpcError | object:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    try:
        return await getattr(stub, method)(request, metadata=metadata, timeout=5)
    except grpc.aio.AioRpcError as err:
        return err


def _denied(result: object) -> bool:
    return (
        isinstance(result, grpc.aio.AioRpcError)
        and result.code() == grpc.StatusCode.PERMISSION_DENIED
        and result.details() == "permission denied"
    )


async def test_token_identity_is_limited_to_its_namespaces_and_forget_needs_admin(
    redis_server: RedisProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dedup.audit")
    settings = {"auth_tokens_dir": str(_tokens(tmp_path)), "admin_identities": "token:ops"}
    async with secure_sidecar(redis_server.url, POLICIES, **settings) as sidecar:  # noqa: SIM117
        async with grpc.aio.insecure_channel(sidecar.target) as channel:
            stub = dedup_pb2_grpc.DedupStub(channel)
            ok = await _call(stub, "Check", pb.CheckRequest(namespace="a", id=b"1"), "token-of-a")
            assert isinstance(ok, pb.CheckResponse)
            assert ok.outcome == pb.CHECK_OUTCOME_NEW
            assert _denied(await _call(stub, "Check", pb.CheckRequest(namespace="b", id=b"1"), "token-of-a"))
            assert _denied(await _call(stub, "Forget", pb.ForgetRequest(namespace="a", id=b"1"), "token-of-a"))
            assert _denied(await _call(stub, "Check", pb.CheckRequest(namespace="a", id=b"2")))  # no token
            assert _denied(await _call(stub, "Check", pb.CheckRequest(namespace="a", id=b"3"), "wrong"))
            assert _denied(await _call(stub, "Check", pb.CheckRequest(namespace="zzz", id=b"1"), "token-of-a"))
            batch = pb.CheckBatchRequest(items=[pb.CheckRequest(namespace=n, id=b"4") for n in ("a", "b")])
            assert _denied(await _call(stub, "CheckBatch", batch, "token-of-a"))
            forgot = await _call(stub, "Forget", pb.ForgetRequest(namespace="a", id=b"1"), "token-of-ops")
            assert isinstance(forgot, pb.ForgetResponse)
            assert forgot.outcome == pb.FORGET_OUTCOME_FORGOTTEN
            # Nothing a denied call named was written: "a"/"2" and "a"/"4" are still new.
            again = await _call(stub, "Check", pb.CheckRequest(namespace="a", id=b"2"), "token-of-a")
            assert isinstance(again, pb.CheckResponse)
            assert again.outcome == pb.CHECK_OUTCOME_NEW
            stream_denied = [
                r
                async for r in stub.Stream(
                    iter([pb.StreamRequest(correlation_id=9, check=pb.CheckRequest(namespace="b", id=b"s"))]),
                    metadata=(("authorization", "Bearer token-of-a"),),
                )
            ]
            assert stream_denied[0].error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    audits = [r for r in caplog.records if r.name == "dedup.audit"]
    assert len(audits) == 7
    first = audits[0].__dict__
    assert (first["identity"], first["operation"], first["namespace"]) == ("token:team-a", "check", "b")
    assert "token-of" not in caplog.text  # tokens are never logged


async def test_mtls_identity_from_the_certificate(redis_server: RedisProcess, pki: Pki, tmp_path: Path) -> None:
    cert, key = pki.ca.issue("sidecar", server=True).write(tmp_path, "server")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.ca.pem)
    client = pki.ca.issue("client-a", uri="spiffe://test/client-a")
    settings = {
        "tls_cert": str(cert),
        "tls_key": str(key),
        "tls_client_ca": str(ca),
        "tls_require_client_auth": True,
    }
    async with (
        secure_sidecar(redis_server.url, POLICIES, **settings) as sidecar,
        tls_channel(sidecar.target, pki.ca.pem, client.cert_pem, client.key_pem) as channel,
    ):
        stub = dedup_pb2_grpc.DedupStub(channel)
        ok = await _call(stub, "Claim", pb.ClaimRequest(namespace="a", id=b"1"))
        assert isinstance(ok, pb.ClaimResponse)
        assert ok.outcome == pb.CLAIM_OUTCOME_ACQUIRED
        assert _denied(await _call(stub, "Claim", pb.ClaimRequest(namespace="b", id=b"1")))
        assert _denied(await _call(stub, "Forget", pb.ForgetRequest(namespace="a", id=b"1")))


def test_open_mode_allows_everything_until_identities_are_configured() -> None:
    open_policies = parse_policies({"namespaces": {"a": {}}})
    assert AccessRules().decide(Caller(), "forget", "a", open_policies) is None
    assert AccessRules().decide(Caller(), "check", "nope", open_policies) is None
    closed = parse_policies(POLICIES)
    assert AccessRules().decide(Caller(), "check", "a", closed) is not None
    assert AccessRules().decide(Caller(("token:team-a",)), "check", "a", closed) is None
    assert AccessRules(admins=frozenset({"token:ops"})).decide(Caller(("token:ops",)), "check", "b", closed) is None


async def test_denial_comes_before_validation_so_no_detail_leaks(redis_server: RedisProcess, tmp_path: Path) -> None:
    """ADR 0052 §6: a caller who may not use `b` learns nothing about `b`'s bounds from bad input."""
    settings = {"auth_tokens_dir": str(_tokens(tmp_path)), "admin_identities": "token:ops"}
    async with (
        secure_sidecar(redis_server.url, POLICIES, **settings) as sidecar,
        grpc.aio.insecure_channel(sidecar.target) as channel,
    ):
        stub = dedup_pb2_grpc.DedupStub(channel)
        for request in (
            pb.CheckRequest(namespace="b", id=b""),
            pb.CheckRequest(namespace="b", id=b"1", window_ms=10**12),
            pb.CheckRequest(namespace="NOT valid", id=b"1"),
        ):
            assert _denied(await _call(stub, "Check", request, "token-of-a"))
        # The same bad input in an allowed namespace is INVALID_ARGUMENT with details.
        allowed = await _call(stub, "Check", pb.CheckRequest(namespace="a", id=b""), "token-of-a")
        assert isinstance(allowed, grpc.aio.AioRpcError)
        assert allowed.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_dns_name_in_a_certificate_is_not_the_token_identity_of_the_same_name(
    redis_server: RedisProcess, pki: Pki, tmp_path: Path
) -> None:
    """Identity kinds never collide: DNS:ops in a certificate is dns:ops, not the admin token:ops."""
    cert, key = pki.ca.issue("sidecar", server=True).write(tmp_path, "server")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.ca.pem)
    impostor = pki.ca.issue("someone", dns=("ops",))
    settings = {
        "tls_cert": str(cert),
        "tls_key": str(key),
        "tls_client_ca": str(ca),
        "tls_require_client_auth": True,
        "auth_tokens_dir": str(_tokens(tmp_path)),
        "admin_identities": "token:ops",
    }
    async with (
        secure_sidecar(redis_server.url, POLICIES, **settings) as sidecar,
        tls_channel(sidecar.target, pki.ca.pem, impostor.cert_pem, impostor.key_pem) as channel,
    ):
        stub = dedup_pb2_grpc.DedupStub(channel)
        assert _denied(await _call(stub, "Forget", pb.ForgetRequest(namespace="a", id=b"1")))
        assert _denied(await _call(stub, "Check", pb.CheckRequest(namespace="b", id=b"1")))
        # The real token holder is the admin, over the same kind of connection.
        forgot = await _call(stub, "Forget", pb.ForgetRequest(namespace="a", id=b"1"), "token-of-ops")
        assert isinstance(forgot, pb.ForgetResponse)


@pytest.mark.parametrize("name", ["ops", "team-a", "DNS:ops", "token:", "cn: padded"])
def test_identities_without_a_kind_are_refused_at_load(name: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policies({"namespaces": {"a": {"allowed_identities": [name]}}})
    assert "has no kind" in str(caught.value)
    with pytest.raises(SettingsError):
        Settings(admin_identities=f"token:fine,{name}")


@pytest.mark.parametrize("name", ["token:ops", "dns:ops.example", "cn:client-a", "spiffe://x/ns/a", "ip:10.0.0.1"])
def test_identities_with_a_kind_are_accepted(name: str) -> None:
    assert identity_problem(name) is None
