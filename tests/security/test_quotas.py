"""Per-namespace quotas (ADR 0051): new records beyond max_new_records per quota_period get
RESOURCE_EXHAUSTED, nothing is stored, duplicates and other namespaces are unaffected."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
import redis
from redis.crc import key_slot

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from sidecar.domain.errors import PolicyError, QuotaExceeded, StoreError
from sidecar.domain.keys import record_key
from sidecar.domain.outcomes import Decision, ForgetOutcome, Inspection
from sidecar.domain.policy import TraceIds, parse_policies
from sidecar.domain.requests import CheckRequest, ClaimRequest
from sidecar.domain.store import Quota
from sidecar.redis_store.cluster import ClusterStore
from tests.security.conftest import secure_sidecar
from tests.support.redis_server import RedisProcess

EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
POLICIES = {
    "namespaces": {
        "small": {"max_new_records": 3, "quota_period": "1h"},
        "allow": {"max_new_records": 1, "quota_period": "1h", "on_store_error": "allow"},
        "other": {},
    }
}


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def test_check_over_quota_is_resource_exhausted_and_stores_nothing(redis_server: RedisProcess) -> None:
    async with (
        secure_sidecar(redis_server.url, POLICIES) as sidecar,
        grpc.aio.insecure_channel(sidecar.target) as channel,
    ):
        stub = dedup_pb2_grpc.DedupStub(channel)
        for i in range(3):
            reply = await stub.Check(pb.CheckRequest(namespace="small", id=f"m{i}".encode()), timeout=5)
            assert reply.outcome == pb.CHECK_OUTCOME_NEW
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Check(pb.CheckRequest(namespace="small", id=b"m3"), timeout=5)
        assert refused.value.code() == EXHAUSTED
        assert "quota" in (refused.value.details() or "")
        # Nothing stored for the refused id; duplicates of admitted ids still answer (they add no record).
        inspected = await stub.Inspect(pb.InspectRequest(namespace="small", id=b"m3"), timeout=5)
        assert inspected.state == pb.RECORD_STATE_ABSENT
        again = await stub.Check(pb.CheckRequest(namespace="small", id=b"m0"), timeout=5)
        assert again.outcome == pb.CHECK_OUTCOME_DUPLICATE
        # Another namespace has its own budget (none here).
        other = await stub.Check(pb.CheckRequest(namespace="other", id=b"m3"), timeout=5)
        assert other.outcome == pb.CHECK_OUTCOME_NEW


async def test_claim_counts_only_new_records_and_commit_still_works(redis_server: RedisProcess) -> None:
    async with (
        secure_sidecar(redis_server.url, POLICIES) as sidecar,
        grpc.aio.insecure_channel(sidecar.target) as channel,
    ):
        stub = dedup_pb2_grpc.DedupStub(channel)
        tokens = []
        for i in range(3):
            claimed = await stub.Claim(pb.ClaimRequest(namespace="small", id=f"c{i}".encode()), timeout=5)
            assert claimed.outcome == pb.CLAIM_OUTCOME_ACQUIRED
            tokens.append(claimed.fencing_token)
        assert await _code(stub.Claim(pb.ClaimRequest(namespace="small", id=b"c3"), timeout=5)) == EXHAUSTED
        assert await _code(stub.Check(pb.CheckRequest(namespace="small", id=b"c3"), timeout=5)) == EXHAUSTED
        # Holders of admitted records go on: IN_PROGRESS, Commit, then DUPLICATE, all over quota.
        busy = await stub.Claim(pb.ClaimRequest(namespace="small", id=b"c0"), timeout=5)
        assert busy.outcome == pb.CLAIM_OUTCOME_IN_PROGRESS
        committed = await stub.Commit(pb.CommitRequest(namespace="small", id=b"c0", fencing_token=tokens[0]), timeout=5)
        assert committed.outcome == pb.COMMIT_OUTCOME_COMMITTED
        duplicate = await stub.Claim(pb.ClaimRequest(namespace="small", id=b"c0"), timeout=5)
        assert duplicate.outcome == pb.CLAIM_OUTCOME_DUPLICATE


async def test_batch_items_over_quota_fail_alone(redis_server: RedisProcess) -> None:
    async with (
        secure_sidecar(redis_server.url, POLICIES) as sidecar,
        grpc.aio.insecure_channel(sidecar.target) as channel,
    ):
        stub = dedup_pb2_grpc.DedupStub(channel)
        items = [pb.CheckRequest(namespace="small", id=f"b{i}".encode()) for i in range(5)]
        items += [pb.CheckRequest(namespace="other", id=b"b0"), pb.CheckRequest(namespace="small", id=b"b0")]
        reply = await stub.CheckBatch(pb.CheckBatchRequest(items=items), timeout=5)
        results = list(reply.results)
        assert [r.outcome for r in results[:3]] == [pb.CHECK_OUTCOME_NEW] * 3
        assert [r.error.code for r in results[3:5]] == [EXHAUSTED.value[0]] * 2
        assert results[5].outcome == pb.CHECK_OUTCOME_NEW  # another namespace, no quota
        assert results[6].outcome == pb.CHECK_OUTCOME_DUPLICATE  # an admitted id seen again in the batch


async def test_quota_refusal_is_never_a_degraded_answer(redis_server: RedisProcess) -> None:
    async with (
        secure_sidecar(redis_server.url, POLICIES) as sidecar,
        grpc.aio.insecure_channel(sidecar.target) as channel,
    ):
        stub = dedup_pb2_grpc.DedupStub(channel)
        first = await stub.Check(pb.CheckRequest(namespace="allow", id=b"x0"), timeout=5)
        assert first.outcome == pb.CHECK_OUTCOME_NEW
        assert not first.degraded
        assert await _code(stub.Check(pb.CheckRequest(namespace="allow", id=b"x1"), timeout=5)) == EXHAUSTED


async def test_the_budget_comes_back_after_the_period(redis_server: RedisProcess) -> None:
    policies = {"namespaces": {"fast": {"max_new_records": 2, "quota_period": "300ms"}}}
    async with (
        secure_sidecar(redis_server.url, policies) as sidecar,
        grpc.aio.insecure_channel(sidecar.target) as channel,
    ):
        stub = dedup_pb2_grpc.DedupStub(channel)
        codes = [await _code(stub.Check(pb.CheckRequest(namespace="fast", id=f"p{i}".encode()))) for i in range(3)]
        assert codes == [grpc.StatusCode.OK, grpc.StatusCode.OK, EXHAUSTED]
        deadline = time.monotonic() + 5
        n = 3
        while await _code(stub.Check(pb.CheckRequest(namespace="fast", id=f"p{n}".encode()))) != grpc.StatusCode.OK:
            assert time.monotonic() < deadline, "the quota window never ended"
            n += 1
            await asyncio.sleep(0.02)  # pacing of the poll, not synchronisation


class _Recorder:
    def __init__(self) -> None:
        self.failures: list[tuple[str, str, str, bool]] = []

    def decided(
        self,
        operation: str,
        namespace: str,
        decision: Decision | Inspection | ForgetOutcome,
        record_id: bytes = b"",
        trace_ids: TraceIds = TraceIds.OMIT,
    ) -> None:
        pass

    def store_failed(self, operation: str, namespace: str, error: StoreError, degraded: bool) -> None:
        self.failures.append((operation, namespace, error.kind, degraded))


async def test_refusals_are_reported_to_the_observer_and_the_counter_has_a_ttl(redis_server: RedisProcess) -> None:
    async with secure_sidecar(redis_server.url, POLICIES) as sidecar:
        recorder = _Recorder()
        sidecar.service._observer = recorder  # the metrics/log/span observers subscribe the same way
        results = await sidecar.service.check_batch(
            [CheckRequest(namespace="small", id=f"o{i}".encode()) for i in range(4)], timeout_s=5
        )
        assert isinstance(results[3], QuotaExceeded)
        assert recorder.failures == [("check", "small", "quota", False)]
        prefix = sidecar.service._limits.key_prefix
        client = redis.Redis.from_url(redis_server.url)
        try:
            assert client.get(f"{prefix}small:quota") == b"3"
            assert 0 < client.pttl(f"{prefix}small:quota") <= 3_600_000
        finally:
            client.close()


def test_cluster_counters_live_in_the_record_slot_with_an_even_share() -> None:
    store = ClusterStore.__new__(ClusterStore)  # quota_counter is pure: no client needed
    quota = Quota("dedup:ns:quota", 100_000, 1000)
    for i in range(200):
        key = record_key("dedup:", "ns", f"id-{i}".encode())
        counter, limit = store.quota_counter(quota, key)
        assert key_slot(counter.encode()) == key_slot(key.encode())
        assert counter.startswith("dedup:ns:quota:{")
        assert limit == 7  # ceil(100000 / 16384)


def test_policy_quota_keys_parse_and_are_bounded() -> None:
    policy = parse_policies({"namespaces": {"a": {"max_new_records": 10, "quota_period": "1m"}}}).lookup("a")
    assert (policy.max_new_records, policy.quota_period_ms) == (10, 60_000)
    with pytest.raises(PolicyError, match="quota_period"):
        parse_policies({"namespaces": {"a": {"max_new_records": 10, "quota_period": "10ms"}}})


@pytest.mark.parametrize("client", ["fastpipe", "redis-py"])
async def test_quota_on_both_redis_clients(redis_server: RedisProcess, client: str) -> None:
    """The default store (open_store: FastPipe) and redis-py run the same scripts and trailer."""
    from sidecar.domain.policy import NamespacePolicy
    from sidecar.redis_store.factory import open_store
    from sidecar.service import DedupService, ServiceLimits
    from tests.support.inprocess import StaticPolicies, unique_prefix

    prefix = unique_prefix()
    store = open_store(redis_server.url, timeout_s=5, client=client)
    assert (store.fast is not None) == (client == "fastpipe")
    policies = StaticPolicies(parse_policies({"namespaces": {"q": {"max_new_records": 2, "quota_period": "1h"}}}))
    service = DedupService(store, policies, ServiceLimits(key_prefix=prefix))
    try:
        results = await service.check_batch(
            [CheckRequest(namespace="q", id=f"f{i}".encode()) for i in (0, 1, 2, 0)], timeout_s=5
        )
        assert [type(r).__name__ for r in results] == [
            "CheckDecision",
            "CheckDecision",
            "QuotaExceeded",
            "CheckDecision",
        ]
        claims = await service.claim_batch(
            [ClaimRequest(namespace="q", id=b"f0"), ClaimRequest(namespace="q", id=b"new")], timeout_s=5
        )
        assert isinstance(claims[1], QuotaExceeded)
        assert not isinstance(claims[0], StoreError)
        assert claims[0].outcome.name == "DUPLICATE"
        assert NamespacePolicy().max_new_records == 0  # the default: no quota
    finally:
        await store.close()
