"""docs/contract.md §5: bad input gets the documented status and field violations; nothing changes."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from dedup.v1 import dedup_pb2 as pb
from tests.support.inprocess import RunningSidecar, running_sidecar
from tests.support.redis_server import RedisProcess
from tests.support.statuses import field_violations

BAD_REQUESTS: list[tuple[str, str, Any, list[str]]] = [
    ("empty id", "Check", pb.CheckRequest(namespace="ok", id=b""), ["id"]),
    ("oversized id", "Check", pb.CheckRequest(namespace="ok", id=b"x" * 513), ["id"]),
    ("bad namespace", "Claim", pb.ClaimRequest(namespace="Bad NS", id=b"x"), ["namespace"]),
    ("empty namespace", "Inspect", pb.InspectRequest(namespace="", id=b"x"), ["namespace"]),
    ("window over max", "Check", pb.CheckRequest(namespace="ok", id=b"x", window_ms=8 * 86_400_000), ["window_ms"]),
    ("negative window", "Check", pb.CheckRequest(namespace="ok", id=b"x", window_ms=-1), ["window_ms"]),
    ("lease over max", "Claim", pb.ClaimRequest(namespace="ok", id=b"x", lease_ms=3_600_000), ["lease_ms"]),
    ("lease too short", "Claim", pb.ClaimRequest(namespace="ok", id=b"x", lease_ms=5), ["lease_ms"]),
    ("huge token", "Release", pb.ReleaseRequest(namespace="ok", id=b"x", fencing_token=2**60), ["fencing_token"]),
    ("fingerprint too big", "Check", pb.CheckRequest(namespace="ok", id=b"x", fingerprint=b"f" * 65), ["fingerprint"]),
    (
        "result too big",
        "Commit",
        pb.CommitRequest(namespace="ok", id=b"x", fencing_token=1, result=b"r" * 4097),
        ["result"],
    ),
    ("empty batch", "CheckBatch", pb.CheckBatchRequest(), ["items"]),
    (
        "batch over max",
        "CheckBatch",
        pb.CheckBatchRequest(items=[pb.CheckRequest(namespace="ok", id=b"%d" % i) for i in range(501)]),
        ["items"],
    ),
    (
        "bad batch item",
        "ClaimBatch",
        pb.ClaimBatchRequest(items=[pb.ClaimRequest(namespace="ok", id=b"a"), pb.ClaimRequest(namespace="ok", id=b"")]),
        ["items[1].id"],
    ),
]


@pytest.mark.parametrize(
    ("label", "method", "request_message", "fields"), BAD_REQUESTS, ids=[r[0] for r in BAD_REQUESTS]
)
async def test_bad_input_is_invalid_argument_with_field_violations(
    sidecar: RunningSidecar, label: str, method: str, request_message: Any, fields: list[str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(sidecar.stub, method)(request_message)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(caught.value) == fields
    # Nothing was stored, and the server goes on answering.
    assert (await sidecar.stub.Inspect(pb.InspectRequest(namespace="ok", id=b"a"))).state == pb.RECORD_STATE_ABSENT
    assert (await sidecar.stub.Check(pb.CheckRequest(namespace="ok", id=b"after"))).outcome == pb.CHECK_OUTCOME_NEW


async def test_unknown_namespace_is_not_found_without_a_default(redis_server: RedisProcess) -> None:
    async with running_sidecar(redis_server.url, {"namespaces": {"orders": {}}}) as sc:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await sc.stub.Check(pb.CheckRequest(namespace="payments", id=b"x"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert "payments" in (caught.value.details() or "")
        assert (await sc.stub.Check(pb.CheckRequest(namespace="orders", id=b"x"))).outcome == pb.CHECK_OUTCOME_NEW


async def test_oversized_message_is_resource_exhausted_and_others_are_served(redis_server: RedisProcess) -> None:
    async with running_sidecar(redis_server.url, max_message_bytes=64 * 1024) as sc:
        huge = pb.CheckBatchRequest(items=[pb.CheckRequest(namespace="ok", id=b"x" * 500)] * 200)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await sc.stub.CheckBatch(huge)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (await sc.stub.Check(pb.CheckRequest(namespace="ok", id=b"y"))).outcome == pb.CHECK_OUTCOME_NEW
