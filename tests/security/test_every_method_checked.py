"""Authorisation and parsing by construction: every method of dedup.v1.Dedup, found by walking the
service descriptor (a new RPC is covered without editing this test), is authorised, and a message that
is not valid protobuf is INVALID_ARGUMENT with at most one warning, never UNKNOWN with a traceback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from dedup.v1 import dedup_pb2 as pb
from sidecar.transport.handlers import SERVICE
from tests.security.conftest import secure_sidecar
from tests.support.redis_server import RedisProcess

POLICIES = {
    "namespaces": {"a": {"allowed_identities": ["token:team-a"]}, "b": {"allowed_identities": ["token:team-b"]}}
}
TOKEN = (("authorization", "Bearer token-of-a"),)
NOT_PROTOBUF = b"\xff\xff\xff\xff"


def request_in(message_type: type[Message], namespace: str) -> Message:
    """A valid request of any Dedup request type that names only `namespace`."""
    message = message_type()
    fields = message_type.DESCRIPTOR.fields_by_name
    if "items" in fields:
        item_type: type[Message] = getattr(pb, fields["items"].message_type.name)
        message.items.append(request_in(item_type, namespace))
    else:
        message.namespace = namespace
        message.id = b"x"
        if "fencing_token" in fields:
            message.fencing_token = 1
    return message


def stream_requests(namespace: str) -> list[pb.StreamRequest]:
    """One StreamRequest per operation the Stream carries (every field of its `request` oneof)."""
    out = []
    for n, field in enumerate(pb.StreamRequest.DESCRIPTOR.oneofs_by_name["request"].fields, start=1):
        body = request_in(getattr(pb, field.message_type.name), namespace)
        message = pb.StreamRequest(correlation_id=n)
        getattr(message, field.name).CopyFrom(body)
        out.append(message)
    return out


def _tokens(tmp_path: Path) -> dict[str, Any]:
    directory = tmp_path / "tokens"
    directory.mkdir()
    (directory / "team-a").write_text("token-of-a")
    return {"auth_tokens_dir": str(directory)}


async def test_every_method_and_stream_operation_is_authorised(
    redis_server: RedisProcess, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dedup.audit")
    checked = []
    async with (
        secure_sidecar(redis_server.url, POLICIES, **_tokens(tmp_path)) as sidecar,
        grpc.aio.insecure_channel(sidecar.target) as channel,
    ):
        for method in SERVICE.methods:
            path = f"/{SERVICE.full_name}/{method.name}"
            request_type = getattr(pb, method.input_type.name)
            response_type = getattr(pb, method.output_type.name)
            if method.client_streaming:
                call = channel.stream_stream(path, pb.StreamRequest.SerializeToString, response_type.FromString)
                requests = stream_requests("b")
                replies = [r async for r in call(iter(requests), metadata=TOKEN, timeout=10)]
                denied = {
                    r.correlation_id for r in replies if r.error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
                }
                assert denied == {m.correlation_id for m in requests}, replies
                allowed = pb.StreamRequest(correlation_id=99, check=pb.CheckRequest(namespace="a", id=b"s"))
                (reply,) = [r async for r in call(iter([allowed]), metadata=TOKEN, timeout=10)]
                assert reply.check.outcome == pb.CHECK_OUTCOME_NEW
                checked.append(method.name)
                continue
            call = channel.unary_unary(path, request_type.SerializeToString, response_type.FromString)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(request_in(request_type, "b"), metadata=TOKEN, timeout=10)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, method.name
            assert caught.value.details() == "permission denied"
            checked.append(method.name)
    assert checked == [m.name for m in SERVICE.methods]
    assert "Stream" in checked
    audited = {getattr(r, "operation", "") for r in caplog.records if r.name == "dedup.audit"}
    assert {"check", "claim", "commit", "release", "inspect", "forget"} <= audited


async def test_malformed_messages_are_invalid_argument_with_one_warning(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with (
        secure_sidecar(redis_server.url) as sidecar,
        grpc.aio.insecure_channel(sidecar.target) as channel,
    ):
        for method in SERVICE.methods:
            path = f"/{SERVICE.full_name}/{method.name}"
            if method.client_streaming:
                call = channel.stream_stream(path, None, pb.StreamResponse.FromString)
                replies = [r async for r in call(iter([NOT_PROTOBUF, NOT_PROTOBUF]), timeout=10)]
                assert [r.error.code for r in replies] == [grpc.StatusCode.INVALID_ARGUMENT.value[0]] * 2
                continue
            for _ in range(3):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await channel.unary_unary(path)(NOT_PROTOBUF, timeout=10)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method.name, caught.value.details())
                assert "not a valid" in (caught.value.details() or "")
        # The server still serves.
        ok = await channel.unary_unary(
            f"/{SERVICE.full_name}/Check", pb.CheckRequest.SerializeToString, pb.CheckResponse.FromString
        )(pb.CheckRequest(namespace="a", id=b"after"), timeout=10)
        assert ok.outcome == pb.CHECK_OUTCOME_NEW
    warnings = [r for r in caplog.records if r.getMessage().startswith("malformed request")]
    assert len(warnings) <= 1, "rate-limited: one line, not one per request"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], "no tracebacks"
