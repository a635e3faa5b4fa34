"""Renew over the Stream: the same semantics and errors as the unary Renew."""

from __future__ import annotations

import grpc

from dedup.v1 import dedup_pb2 as pb
from tests.support.inprocess import RunningSidecar

NS = "orders"


async def _one(sidecar: RunningSidecar, request: pb.StreamRequest) -> pb.StreamResponse:
    async def requests():  # type: ignore[no-untyped-def]
        yield request

    responses = [r async for r in sidecar.stub.Stream(requests())]
    assert len(responses) == 1
    return responses[0]


async def test_renew_on_the_stream_extends_the_lease(sidecar: RunningSidecar) -> None:
    acquired = await sidecar.stub.Claim(pb.ClaimRequest(namespace=NS, id=b"r1", lease_ms=1_000))
    renew = pb.RenewRequest(namespace=NS, id=b"r1", fencing_token=acquired.fencing_token, lease_ms=60_000)
    response = await _one(sidecar, pb.StreamRequest(correlation_id=7, renew=renew))
    assert response.correlation_id == 7
    assert response.WhichOneof("response") == "renew"
    assert response.renew.outcome == pb.RENEW_OUTCOME_RENEWED
    assert response.renew.lease_expires_unix_ms >= acquired.lease_expires_unix_ms + 50_000
    inspected = await sidecar.stub.Inspect(pb.InspectRequest(namespace=NS, id=b"r1"))
    assert inspected.ttl_ms > 50_000


async def test_renew_on_the_stream_with_a_stale_token_is_lease_lost(sidecar: RunningSidecar) -> None:
    acquired = await sidecar.stub.Claim(pb.ClaimRequest(namespace=NS, id=b"r2"))
    stale = pb.RenewRequest(namespace=NS, id=b"r2", fencing_token=acquired.fencing_token + 1)
    response = await _one(sidecar, pb.StreamRequest(correlation_id=1, renew=stale))
    assert response.renew.outcome == pb.RENEW_OUTCOME_LEASE_LOST
    unary = await sidecar.stub.Renew(stale)
    assert unary.outcome == response.renew.outcome


async def test_renew_on_the_stream_rejects_bad_input_like_the_unary_call(sidecar: RunningSidecar) -> None:
    bad = pb.RenewRequest(namespace=NS, id=b"r3", fencing_token=1, lease_ms=1)
    response = await _one(sidecar, pb.StreamRequest(correlation_id=2, renew=bad))
    assert response.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [v.field for v in response.error.field_violations] == ["lease_ms"]
