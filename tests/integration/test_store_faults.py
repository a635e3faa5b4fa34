"""Invariant 5, second half: a permanent store error is not an outage.

WRONGTYPE (something else lives at a record key), NOPERM (the Redis user lacks a command),
script errors and unreadable replies are INTERNAL (FAILED_PRECONDITION for NOPERM), never
UNAVAILABLE and never a degraded NEW/ACQUIRED, even in an `on_store_error: allow` namespace.
"""

from __future__ import annotations

import logging
import uuid

import grpc
import pytest

from dedup.v1 import dedup_pb2 as pb
from sidecar.domain.keys import record_key
from tests.support.inprocess import running_sidecar, unique_prefix
from tests.support.redis_server import RedisProcess

POLICIES = {"namespaces": {"strict": {}, "lenient": {"on_store_error": "allow"}}}


@pytest.mark.parametrize("client", ["fastpipe", "redis-py"])
async def test_a_hash_at_a_record_key_is_internal_never_new(
    redis_server: RedisProcess, client: str, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = unique_prefix()
    record = f"id-{uuid.uuid4().hex}".encode()
    with redis_server.client() as redis:
        for namespace in ("strict", "lenient"):
            redis.hset(record_key(prefix, namespace, record), "not", "a dedup record")
    caplog.set_level(logging.ERROR, logger="dedup.store")
    async with running_sidecar(redis_server.url, POLICIES, key_prefix=prefix, redis_client=client) as sc:
        for namespace in ("lenient", "strict"):
            for call, request in (
                (sc.stub.Check, pb.CheckRequest(namespace=namespace, id=record)),
                (sc.stub.Claim, pb.ClaimRequest(namespace=namespace, id=record)),
                (sc.stub.Commit, pb.CommitRequest(namespace=namespace, id=record, fencing_token=7)),
                (sc.stub.Release, pb.ReleaseRequest(namespace=namespace, id=record, fencing_token=7)),
                (sc.stub.Renew, pb.RenewRequest(namespace=namespace, id=record, fencing_token=7)),
                (sc.stub.Inspect, pb.InspectRequest(namespace=namespace, id=record)),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call(request, timeout=10)  # type: ignore[operator]
                assert caught.value.code() == grpc.StatusCode.INTERNAL, (namespace, caught.value.details())
                assert "wrongtype" in (caught.value.details() or "")

        batch = await sc.stub.CheckBatch(
            pb.CheckBatchRequest(items=[pb.CheckRequest(namespace="lenient", id=record)]), timeout=10
        )
        assert not batch.results[0].degraded
        assert batch.results[0].error.code == grpc.StatusCode.INTERNAL.value[0]

        # The store was not touched: the hash is still there, nothing was answered as if it were new.
        with redis_server.client() as redis:
            assert redis.type(record_key(prefix, "lenient", record)) == b"hash"
    faults = [r for r in caplog.records if r.getMessage().startswith("store fault")]
    logged_keys = [getattr(r, "key", "") for r in faults]
    assert sorted(set(logged_keys)) == sorted(record_key(prefix, ns, record) for ns in ("lenient", "strict"))
    assert len(faults) == len(set(logged_keys)), "a fault is logged once per key, not once per call"
    assert all(record.hex() not in r.getMessage() for r in faults)


async def test_a_user_without_script_permission_is_failed_precondition(redis_server: RedisProcess) -> None:
    user, password = f"noscript-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with redis_server.client() as redis:
        redis.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all", "-@scripting"])
    url = redis_server.url.replace("redis://", f"redis://{user}:{password}@")
    try:
        async with running_sidecar(url, POLICIES) as sc:
            for namespace in ("lenient", "strict"):
                # Claim always runs a script (a Check may not: SET NX GET on 7.0+, ADR 0071)
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await sc.stub.Claim(pb.ClaimRequest(namespace=namespace, id=b"x"), timeout=10)
                assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION, caught.value.details()
    finally:
        with redis_server.client() as redis:
            redis.acl_deluser(user)
