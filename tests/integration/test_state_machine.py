"""The state machine (Lua on a real Redis) through the gRPC API: docs/contract.md §3-§4."""

from __future__ import annotations

import itertools

import grpc
import pytest

from dedup.v1 import dedup_pb2 as pb
from tests.support.inprocess import RunningSidecar, running_sidecar
from tests.support.redis_server import RedisProcess
from tests.support.waiting import await_state, eventually

NS = "orders"


def check(record_id: bytes, **fields: object) -> pb.CheckRequest:
    return pb.CheckRequest(namespace=NS, id=record_id, **fields)  # type: ignore[arg-type]


def claim(record_id: bytes, **fields: object) -> pb.ClaimRequest:
    return pb.ClaimRequest(namespace=NS, id=record_id, **fields)  # type: ignore[arg-type]


async def test_claim_commit_makes_duplicate_for_claim_and_check_with_result(sidecar: RunningSidecar) -> None:
    stub = sidecar.stub
    acquired = await stub.Claim(claim(b"m1"))
    assert acquired.outcome == pb.CLAIM_OUTCOME_ACQUIRED
    assert acquired.fencing_token > 0
    assert acquired.lease_expires_unix_ms > acquired.first_seen_unix_ms
    committed = await stub.Commit(
        pb.CommitRequest(namespace=NS, id=b"m1", fencing_token=acquired.fencing_token, result=b"receipt")
    )
    assert committed.outcome == pb.COMMIT_OUTCOME_COMMITTED
    assert committed.expires_unix_ms > committed.committed_unix_ms

    dup = await stub.Claim(claim(b"m1"))
    assert dup.outcome == pb.CLAIM_OUTCOME_DUPLICATE
    assert dup.result == b"receipt"
    assert dup.HasField("result")
    assert dup.committed_unix_ms == committed.committed_unix_ms
    assert dup.first_seen_unix_ms == acquired.first_seen_unix_ms

    by_check = await stub.Check(check(b"m1"))
    assert by_check.outcome == pb.CHECK_OUTCOME_DUPLICATE
    assert by_check.state == pb.RECORD_STATE_DONE
    assert by_check.result == b"receipt"

    inspected = await stub.Inspect(pb.InspectRequest(namespace=NS, id=b"m1"))
    assert inspected.state == pb.RECORD_STATE_DONE
    assert inspected.fencing_token == acquired.fencing_token
    assert inspected.result == b"receipt"
    assert 0 < inspected.ttl_ms <= 86_400_000


async def test_commit_without_result_returns_no_result(sidecar: RunningSidecar) -> None:
    acquired = await sidecar.stub.Claim(claim(b"m2"))
    await sidecar.stub.Commit(pb.CommitRequest(namespace=NS, id=b"m2", fencing_token=acquired.fencing_token))
    dup = await sidecar.stub.Claim(claim(b"m2"))
    assert dup.outcome == pb.CLAIM_OUTCOME_DUPLICATE
    assert not dup.HasField("result")


async def test_check_marked_id_is_duplicate_for_claim(sidecar: RunningSidecar) -> None:
    assert (await sidecar.stub.Check(check(b"m3"))).outcome == pb.CHECK_OUTCOME_NEW
    assert (await sidecar.stub.Claim(claim(b"m3"))).outcome == pb.CLAIM_OUTCOME_DUPLICATE


async def test_in_progress_then_release_makes_it_claimable_at_once(sidecar: RunningSidecar) -> None:
    stub = sidecar.stub
    first = await stub.Claim(claim(b"m4", lease_ms=60_000))
    busy = await stub.Claim(claim(b"m4"))
    assert busy.outcome == pb.CLAIM_OUTCOME_IN_PROGRESS
    assert 0 < busy.retry_after_ms <= 60_000
    as_check = await stub.Check(check(b"m4"))
    assert as_check.outcome == pb.CHECK_OUTCOME_DUPLICATE
    assert as_check.state == pb.RECORD_STATE_IN_PROGRESS
    released = await stub.Release(pb.ReleaseRequest(namespace=NS, id=b"m4", fencing_token=first.fencing_token))
    assert released.outcome == pb.RELEASE_OUTCOME_RELEASED
    second = await stub.Claim(claim(b"m4"))
    assert second.outcome == pb.CLAIM_OUTCOME_ACQUIRED
    assert second.fencing_token > first.fencing_token


async def test_renew_extends_and_stale_tokens_change_nothing(sidecar: RunningSidecar) -> None:
    stub = sidecar.stub
    held = await stub.Claim(claim(b"m5", lease_ms=1_000))
    renewed = await stub.Renew(
        pb.RenewRequest(namespace=NS, id=b"m5", fencing_token=held.fencing_token, lease_ms=60_000)
    )
    assert renewed.outcome == pb.RENEW_OUTCOME_RENEWED
    assert renewed.lease_expires_unix_ms >= held.lease_expires_unix_ms + 50_000
    wrong = held.fencing_token + 1
    for call, request, lost in (
        (stub.Commit, pb.CommitRequest(namespace=NS, id=b"m5", fencing_token=wrong), pb.COMMIT_OUTCOME_LEASE_LOST),
        (stub.Release, pb.ReleaseRequest(namespace=NS, id=b"m5", fencing_token=wrong), pb.RELEASE_OUTCOME_LEASE_LOST),
        (stub.Renew, pb.RenewRequest(namespace=NS, id=b"m5", fencing_token=wrong), pb.RENEW_OUTCOME_LEASE_LOST),
    ):
        assert (await call(request)).outcome == lost  # type: ignore[operator]
    after = await stub.Inspect(pb.InspectRequest(namespace=NS, id=b"m5"))
    assert after.state == pb.RECORD_STATE_IN_PROGRESS
    assert after.fencing_token == held.fencing_token
    assert after.lease_expires_unix_ms == renewed.lease_expires_unix_ms


async def test_token_zero_never_holds_a_lease(sidecar: RunningSidecar) -> None:
    await sidecar.stub.Check(check(b"z1"))  # a Check-marked record stores token 0
    zero = pb.CommitRequest(namespace=NS, id=b"z1", fencing_token=0)
    assert (await sidecar.stub.Commit(zero)).outcome == pb.COMMIT_OUTCOME_LEASE_LOST
    assert (await sidecar.stub.Commit(pb.CommitRequest(namespace=NS, id=b"z2"))).outcome == pb.COMMIT_OUTCOME_LEASE_LOST


async def test_commit_retried_by_its_holder_is_committed_again(sidecar: RunningSidecar) -> None:
    held = await sidecar.stub.Claim(claim(b"m6"))
    request = pb.CommitRequest(namespace=NS, id=b"m6", fencing_token=held.fencing_token, result=b"r")
    first = await sidecar.stub.Commit(request)
    again = await sidecar.stub.Commit(request)
    assert again.outcome == pb.COMMIT_OUTCOME_COMMITTED
    assert again.committed_unix_ms == first.committed_unix_ms
    release = await sidecar.stub.Release(pb.ReleaseRequest(namespace=NS, id=b"m6", fencing_token=held.fencing_token))
    assert release.outcome == pb.RELEASE_OUTCOME_LEASE_LOST
    assert (await sidecar.stub.Claim(claim(b"m6"))).outcome == pb.CLAIM_OUTCOME_DUPLICATE


async def test_lease_expiry_lets_the_next_claimant_in_with_a_larger_token(sidecar: RunningSidecar) -> None:
    stub = sidecar.stub
    stale = await stub.Claim(claim(b"m7", lease_ms=200))
    assert (await stub.Claim(claim(b"m7"))).outcome == pb.CLAIM_OUTCOME_IN_PROGRESS
    await await_state(stub, NS, b"m7", pb.RECORD_STATE_ABSENT)
    fresh = await stub.Claim(claim(b"m7"))
    assert fresh.outcome == pb.CLAIM_OUTCOME_ACQUIRED
    assert fresh.fencing_token > stale.fencing_token
    late = await stub.Commit(pb.CommitRequest(namespace=NS, id=b"m7", fencing_token=stale.fencing_token))
    assert late.outcome == pb.COMMIT_OUTCOME_LEASE_LOST
    assert (await stub.Inspect(pb.InspectRequest(namespace=NS, id=b"m7"))).fencing_token == fresh.fencing_token


async def test_window_ends_on_the_redis_clock_then_the_id_is_new(sidecar: RunningSidecar) -> None:
    stub = sidecar.stub
    marked = await stub.Check(check(b"w1", window_ms=1_000))
    assert (await stub.Check(check(b"w1"))).outcome == pb.CHECK_OUTCOME_DUPLICATE
    gone = await await_state(stub, NS, b"w1", pb.RECORD_STATE_ABSENT)
    assert gone.now_unix_ms - marked.first_seen_unix_ms >= 1_000  # measured on the Redis clock
    assert (await stub.Check(check(b"w1"))).outcome == pb.CHECK_OUTCOME_NEW

    held = await stub.Claim(claim(b"w2"))
    committed = await stub.Commit(
        pb.CommitRequest(namespace=NS, id=b"w2", fencing_token=held.fencing_token, window_ms=1_000)
    )
    assert (await stub.Claim(claim(b"w2"))).outcome == pb.CLAIM_OUTCOME_DUPLICATE
    gone = await await_state(stub, NS, b"w2", pb.RECORD_STATE_ABSENT)
    assert gone.now_unix_ms - committed.committed_unix_ms >= 1_000
    again = await stub.Claim(claim(b"w2"))
    assert again.outcome == pb.CLAIM_OUTCOME_ACQUIRED
    assert again.fencing_token > held.fencing_token


async def test_tokens_strictly_increase_over_1000_claim_release_cycles(sidecar: RunningSidecar) -> None:
    stub = sidecar.stub
    tokens = []
    for _ in range(1000):
        held = await stub.Claim(claim(b"cycle"))
        assert held.outcome == pb.CLAIM_OUTCOME_ACQUIRED
        tokens.append(held.fencing_token)
        released = await stub.Release(pb.ReleaseRequest(namespace=NS, id=b"cycle", fencing_token=held.fencing_token))
        assert released.outcome == pb.RELEASE_OUTCOME_RELEASED
    assert all(later > earlier for earlier, later in itertools.pairwise(tokens))


async def test_fingerprint_conflict(sidecar: RunningSidecar) -> None:
    stub = sidecar.stub
    assert (await stub.Check(check(b"f1", fingerprint=b"A"))).outcome == pb.CHECK_OUTCOME_NEW
    conflict = await stub.Check(check(b"f1", fingerprint=b"B"))
    assert conflict.outcome == pb.CHECK_OUTCOME_CONFLICT
    assert (await stub.Claim(claim(b"f1", fingerprint=b"B"))).outcome == pb.CLAIM_OUTCOME_CONFLICT
    assert (await stub.Check(check(b"f1", fingerprint=b"A"))).outcome == pb.CHECK_OUTCOME_DUPLICATE
    assert (await stub.Check(check(b"f1"))).outcome == pb.CHECK_OUTCOME_DUPLICATE

    held = await stub.Claim(claim(b"f2", fingerprint=b"A"))
    assert held.outcome == pb.CLAIM_OUTCOME_ACQUIRED
    assert (await stub.Claim(claim(b"f2", fingerprint=b"B"))).outcome == pb.CLAIM_OUTCOME_CONFLICT
    assert (await stub.Claim(claim(b"f2", fingerprint=b"A"))).outcome == pb.CLAIM_OUTCOME_IN_PROGRESS


async def test_result_over_the_bound_is_invalid_and_changes_nothing(sidecar: RunningSidecar) -> None:
    held = await sidecar.stub.Claim(claim(b"r1"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await sidecar.stub.Commit(
            pb.CommitRequest(namespace=NS, id=b"r1", fencing_token=held.fencing_token, result=b"x" * 4097)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "result_max_bytes" in (caught.value.details() or "")
    assert (await sidecar.stub.Inspect(pb.InspectRequest(namespace=NS, id=b"r1"))).state == pb.RECORD_STATE_IN_PROGRESS


async def test_forget_makes_an_id_new_again(sidecar: RunningSidecar) -> None:
    await sidecar.stub.Check(check(b"g1"))
    forgot = await sidecar.stub.Forget(pb.ForgetRequest(namespace=NS, id=b"g1"))
    assert forgot.outcome == pb.FORGET_OUTCOME_FORGOTTEN
    assert (await sidecar.stub.Forget(pb.ForgetRequest(namespace=NS, id=b"g1"))).outcome == pb.FORGET_OUTCOME_ABSENT
    assert (await sidecar.stub.Check(check(b"g1"))).outcome == pb.CHECK_OUTCOME_NEW


async def test_batches_answer_per_item_in_order(sidecar: RunningSidecar) -> None:
    stub = sidecar.stub
    await stub.Check(check(b"b2"))
    checked = await stub.CheckBatch(pb.CheckBatchRequest(items=[check(b"b1"), check(b"b2"), check(b"b1")]))
    assert [r.outcome for r in checked.results] == [
        pb.CHECK_OUTCOME_NEW,
        pb.CHECK_OUTCOME_DUPLICATE,
        pb.CHECK_OUTCOME_DUPLICATE,
    ]
    claimed = await stub.ClaimBatch(pb.ClaimBatchRequest(items=[claim(b"b3"), claim(b"b4"), claim(b"b1")]))
    outcomes = [r.outcome for r in claimed.results]
    assert outcomes == [pb.CLAIM_OUTCOME_ACQUIRED, pb.CLAIM_OUTCOME_ACQUIRED, pb.CLAIM_OUTCOME_DUPLICATE]
    commits = await stub.CommitBatch(
        pb.CommitBatchRequest(
            items=[
                pb.CommitRequest(namespace=NS, id=b"b3", fencing_token=claimed.results[0].fencing_token),
                pb.CommitRequest(namespace=NS, id=b"b4", fencing_token=claimed.results[0].fencing_token + 7),
            ]
        )
    )
    assert [r.outcome for r in commits.results] == [pb.COMMIT_OUTCOME_COMMITTED, pb.COMMIT_OUTCOME_LEASE_LOST]


async def test_stream_answers_with_correlation_ids(sidecar: RunningSidecar) -> None:
    async def requests():  # type: ignore[no-untyped-def]
        yield pb.StreamRequest(correlation_id=1, check=check(b"s1"))
        yield pb.StreamRequest(correlation_id=2, claim=claim(b"s2"))
        yield pb.StreamRequest(correlation_id=3, check_batch=pb.CheckBatchRequest(items=[check(b"s3"), check(b"s4")]))
        yield pb.StreamRequest(correlation_id=4, check=pb.CheckRequest(namespace="BAD", id=b"x"))
        yield pb.StreamRequest(correlation_id=5)

    responses = {r.correlation_id: r async for r in sidecar.stub.Stream(requests())}
    assert responses[1].check.outcome == pb.CHECK_OUTCOME_NEW
    assert responses[2].claim.outcome == pb.CLAIM_OUTCOME_ACQUIRED
    assert [r.outcome for r in responses[3].check_batch.results] == [pb.CHECK_OUTCOME_NEW] * 2
    assert responses[4].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [v.field for v in responses[4].error.field_violations] == ["namespace"]
    assert responses[5].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


async def test_sliding_window_restarts_on_each_sighting(redis_server: RedisProcess) -> None:
    policies = {"namespaces": {"slide": {"window": "1500ms", "window_mode": "sliding"}}}
    async with running_sidecar(redis_server.url, policies) as sc:
        request = pb.CheckRequest(namespace="slide", id=b"x")
        await sc.stub.Check(request)
        inspect = pb.InspectRequest(namespace="slide", id=b"x")
        aged = await eventually(lambda: sc.stub.Inspect(inspect), lambda r: 0 < r.ttl_ms < 1_000)
        seen = await sc.stub.Check(request)
        assert seen.outcome == pb.CHECK_OUTCOME_DUPLICATE
        after = await sc.stub.Inspect(inspect)
        assert after.ttl_ms > 1_000  # the window restarted at the sighting
        assert after.first_seen_unix_ms == aged.first_seen_unix_ms


async def test_shadow_namespace_answers_new_and_reports_the_real_decision(redis_server: RedisProcess) -> None:
    async with running_sidecar(redis_server.url, {"namespaces": {"quiet": {"shadow": True}}}) as sc:
        request = pb.CheckRequest(namespace="quiet", id=b"x")
        first = await sc.stub.Check(request)
        second = await sc.stub.Check(request)
        assert first.outcome == second.outcome == pb.CHECK_OUTCOME_NEW
        assert first.shadow_outcome == pb.CHECK_OUTCOME_NEW
        assert second.shadow_outcome == pb.CHECK_OUTCOME_DUPLICATE
