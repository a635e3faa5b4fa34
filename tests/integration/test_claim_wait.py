"""Wait-for-result (ADR 0065): a Claim of an id in progress waits for its holder, on a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import grpc
import pytest

from dedup.v1 import dedup_pb2 as pb
from dedup.v1 import dedup_pb2_grpc
from sidecar.domain.claim_waiters import ClaimWaiters, WaitEnd
from tests.support.inprocess import RunningSidecar, running_sidecar
from tests.support.redis_server import RedisProcess
from tests.support.sidecar_process import SidecarProcess
from tests.support.statuses import field_violations
from tests.telemetry.test_metrics import scrape, values

NS = "orders"


def claim(record_id: bytes, **fields: object) -> pb.ClaimRequest:
    return pb.ClaimRequest(namespace=NS, id=record_id, **fields)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    """Waits (bounded) for an in-process condition, e.g. a number of registered waiters."""
    async with asyncio.timeout(within_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.005)


def waiting(sidecar: RunningSidecar, count: int) -> Callable[[], bool]:
    assert sidecar.waiters is not None
    waiters: ClaimWaiters = sidecar.waiters
    return lambda: len(waiters) == count


def ended(sidecar: RunningSidecar, end: WaitEnd) -> int:
    assert sidecar.waiters is not None
    return sum(n for (_, how), n in sidecar.waiters.ended.items() if how is end)


async def test_commit_wakes_the_waiter_with_duplicate_and_the_result(sidecar: RunningSidecar) -> None:
    holder = await sidecar.stub.Claim(claim(b"c1", lease_ms=60_000))
    waiter = asyncio.ensure_future(sidecar.stub.Claim(claim(b"c1", wait_ms=20_000), timeout=30))
    await until(waiting(sidecar, 1))
    started = time.monotonic()
    await sidecar.stub.Commit(
        pb.CommitRequest(namespace=NS, id=b"c1", fencing_token=holder.fencing_token, result=b"receipt")
    )
    answer = await waiter
    assert time.monotonic() - started < 5  # woken, not the lease (60 s) or wait_ms (20 s)
    assert answer.outcome == pb.CLAIM_OUTCOME_DUPLICATE
    assert answer.result == b"receipt"
    assert answer.first_seen_unix_ms == holder.first_seen_unix_ms
    assert len(sidecar.waiters or ()) == 0
    assert ended(sidecar, WaitEnd.COMMITTED) == 1


async def test_release_wakes_the_waiter_which_acquires_with_a_greater_token(sidecar: RunningSidecar) -> None:
    holder = await sidecar.stub.Claim(claim(b"r1", lease_ms=60_000))
    waiter = asyncio.ensure_future(sidecar.stub.Claim(claim(b"r1", wait_ms=20_000), timeout=30))
    await until(waiting(sidecar, 1))
    await sidecar.stub.Release(pb.ReleaseRequest(namespace=NS, id=b"r1", fencing_token=holder.fencing_token))
    answer = await waiter
    assert answer.outcome == pb.CLAIM_OUTCOME_ACQUIRED
    assert answer.fencing_token > holder.fencing_token
    assert ended(sidecar, WaitEnd.RELEASED) == 1


async def test_lease_end_without_any_notification_lets_the_waiter_acquire(sidecar: RunningSidecar) -> None:
    holder = await sidecar.stub.Claim(claim(b"e1", lease_ms=300))
    answer = await sidecar.stub.Claim(claim(b"e1", wait_ms=20_000), timeout=30)
    assert answer.outcome == pb.CLAIM_OUTCOME_ACQUIRED
    assert answer.fencing_token > holder.fencing_token
    assert ended(sidecar, WaitEnd.EXPIRED) == 1


async def test_wait_ms_passing_answers_in_progress_with_the_remaining_lease(sidecar: RunningSidecar) -> None:
    await sidecar.stub.Claim(claim(b"t1", lease_ms=60_000))
    started = time.monotonic()
    answer = await sidecar.stub.Claim(claim(b"t1", wait_ms=300), timeout=30)
    elapsed = time.monotonic() - started
    assert answer.outcome == pb.CLAIM_OUTCOME_IN_PROGRESS
    assert 0.3 <= elapsed < 5
    assert 50_000 < answer.retry_after_ms < 60_000
    assert ended(sidecar, WaitEnd.TIMEOUT) == 1


async def test_a_deadline_shorter_than_wait_ms_answers_in_progress_before_it(sidecar: RunningSidecar) -> None:
    await sidecar.stub.Claim(claim(b"d1", lease_ms=60_000))
    started = time.monotonic()
    answer = await sidecar.stub.Claim(claim(b"d1", wait_ms=20_000), timeout=0.8)  # no DEADLINE_EXCEEDED
    elapsed = time.monotonic() - started
    assert answer.outcome == pb.CLAIM_OUTCOME_IN_PROGRESS
    assert 0.3 < elapsed < 0.8


async def test_a_cancelled_call_frees_its_waiter_at_once(sidecar: RunningSidecar) -> None:
    await sidecar.stub.Claim(claim(b"x1", lease_ms=60_000))
    call = sidecar.stub.Claim(claim(b"x1", wait_ms=20_000), timeout=30)
    await until(waiting(sidecar, 1))
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await until(waiting(sidecar, 0), within_s=5)
    await until(lambda: ended(sidecar, WaitEnd.CANCELLED) == 1, within_s=5)


async def test_many_waiters_and_one_release_give_exactly_one_acquired(sidecar: RunningSidecar) -> None:
    holder = await sidecar.stub.Claim(claim(b"n1", lease_ms=60_000))
    calls = [asyncio.ensure_future(sidecar.stub.Claim(claim(b"n1", wait_ms=20_000), timeout=30)) for _ in range(8)]
    await until(waiting(sidecar, 8))
    await sidecar.stub.Release(pb.ReleaseRequest(namespace=NS, id=b"n1", fencing_token=holder.fencing_token))
    done, _ = await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED, timeout=10)
    (winner,) = [task.result() for task in done]
    assert winner.outcome == pb.CLAIM_OUTCOME_ACQUIRED
    await until(waiting(sidecar, 7))  # the others went back to waiting, on the new holder
    assert not any(call.done() for call in calls if call not in done)
    await sidecar.stub.Commit(
        pb.CommitRequest(namespace=NS, id=b"n1", fencing_token=winner.fencing_token, result=b"ok")
    )
    others = await asyncio.gather(*(call for call in calls if call not in done))
    assert [o.outcome for o in others] == [pb.CLAIM_OUTCOME_DUPLICATE] * 7
    assert all(o.result == b"ok" for o in others)


async def test_bad_wait_ms_is_invalid_argument_naming_the_field(redis_server: RedisProcess) -> None:
    async with running_sidecar(redis_server.url, {"namespaces": {NS: {"max_claim_wait": "1s"}}}) as sc:
        for wait in (-1, 1_001):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await sc.stub.Claim(claim(b"v1", wait_ms=wait))
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field_violations(raised.value) == ["wait_ms"]
        items = [claim(b"v2", wait_ms=1_000), claim(b"v3", wait_ms=-5)]
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await sc.stub.ClaimBatch(pb.ClaimBatchRequest(items=items))
        assert field_violations(raised.value) == ["items[1].wait_ms"]
        assert (await sc.stub.Claim(claim(b"v4", wait_ms=1_000))).outcome == pb.CLAIM_OUTCOME_ACQUIRED


async def test_claim_batch_items_wait_each_for_their_own_holder(sidecar: RunningSidecar) -> None:
    committed = await sidecar.stub.Claim(claim(b"b1", lease_ms=60_000))
    released = await sidecar.stub.Claim(claim(b"b2", lease_ms=60_000))
    batch = asyncio.ensure_future(
        sidecar.stub.ClaimBatch(
            pb.ClaimBatchRequest(
                items=[claim(b"b1", wait_ms=20_000), claim(b"b2", wait_ms=20_000), claim(b"b3", wait_ms=20_000)]
            ),
            timeout=30,
        )
    )
    await until(waiting(sidecar, 2))
    await sidecar.stub.Commit(pb.CommitRequest(namespace=NS, id=b"b1", fencing_token=committed.fencing_token))
    await sidecar.stub.Release(pb.ReleaseRequest(namespace=NS, id=b"b2", fencing_token=released.fencing_token))
    results = (await batch).results
    assert [r.outcome for r in results] == [
        pb.CLAIM_OUTCOME_DUPLICATE,
        pb.CLAIM_OUTCOME_ACQUIRED,
        pb.CLAIM_OUTCOME_ACQUIRED,
    ]


async def test_a_waiting_stream_claim_does_not_hold_up_the_streams_other_messages(sidecar: RunningSidecar) -> None:
    holder = await sidecar.stub.Claim(claim(b"s1", lease_ms=60_000))
    outgoing: asyncio.Queue[pb.StreamRequest | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[pb.StreamRequest]:
        while (message := await outgoing.get()) is not None:
            yield message

    stream = sidecar.stub.Stream(requests(), timeout=30)
    await outgoing.put(pb.StreamRequest(correlation_id=1, claim=claim(b"s1", wait_ms=20_000)))
    await until(waiting(sidecar, 1))
    await outgoing.put(pb.StreamRequest(correlation_id=2, check=pb.CheckRequest(namespace=NS, id=b"s2")))
    first = await stream.read()
    assert first.correlation_id == 2
    assert first.check.outcome == pb.CHECK_OUTCOME_NEW
    commit = pb.CommitRequest(namespace=NS, id=b"s1", fencing_token=holder.fencing_token, result=b"r")
    await outgoing.put(pb.StreamRequest(correlation_id=3, commit=commit))
    answers = {}
    for _ in range(2):
        response = await stream.read()
        answers[response.correlation_id] = response
    assert answers[3].commit.outcome == pb.COMMIT_OUTCOME_COMMITTED
    assert answers[1].claim.outcome == pb.CLAIM_OUTCOME_DUPLICATE
    assert answers[1].claim.result == b"r"
    await outgoing.put(None)


async def test_over_the_waiter_limit_a_claim_answers_at_once(redis_server: RedisProcess) -> None:
    async with running_sidecar(redis_server.url, max_claim_waiters=1) as sc:
        await sc.stub.Claim(claim(b"o1", lease_ms=60_000))
        first = asyncio.ensure_future(sc.stub.Claim(claim(b"o1", wait_ms=20_000), timeout=30))
        await until(waiting(sc, 1))
        started = time.monotonic()
        second = await sc.stub.Claim(claim(b"o1", wait_ms=20_000), timeout=30)
        assert second.outcome == pb.CLAIM_OUTCOME_IN_PROGRESS
        assert time.monotonic() - started < 2
        assert ended(sc, WaitEnd.OVERFLOW) == 1
        first.cancel()


async def test_a_missed_notification_is_made_up_when_the_subscriber_resubscribes(
    sidecar: RunningSidecar, redis_server: RedisProcess
) -> None:
    assert sidecar.wake is not None
    holder = await sidecar.stub.Claim(claim(b"m1", lease_ms=60_000))
    waiter = asyncio.ensure_future(sidecar.stub.Claim(claim(b"m1", wait_ms=20_000), timeout=30))
    await until(waiting(sidecar, 1))
    before = sidecar.wake.subscriptions
    admin = redis_server.client()
    admin.client_kill_filter(_type="pubsub")  # the notification below is published to nobody
    await sidecar.stub.Commit(pb.CommitRequest(namespace=NS, id=b"m1", fencing_token=holder.fencing_token))
    answer = await waiter
    assert answer.outcome == pb.CLAIM_OUTCOME_DUPLICATE  # after the resubscription, not after 60 s
    assert sidecar.wake.subscriptions > before


async def test_a_commit_through_another_sidecar_process_wakes_the_waiter(
    sidecar: RunningSidecar, redis_server: RedisProcess
) -> None:
    other = SidecarProcess(
        ["--redis-url", redis_server.url, "--key-prefix", sidecar.key_prefix, "--allow-unsafe-store"]
    ).start()
    try:
        async with grpc.aio.insecure_channel(other.target) as channel:
            stub_b = dedup_pb2_grpc.DedupStub(channel)
            holder = await stub_b.Claim(claim(b"p1", lease_ms=60_000))
            waiter = asyncio.ensure_future(sidecar.stub.Claim(claim(b"p1", wait_ms=20_000), timeout=30))
            await until(waiting(sidecar, 1))
            started = time.monotonic()
            await stub_b.Commit(
                pb.CommitRequest(namespace=NS, id=b"p1", fencing_token=holder.fencing_token, result=b"from-b")
            )
            answer = await waiter
            assert time.monotonic() - started < 5
            assert answer.outcome == pb.CLAIM_OUTCOME_DUPLICATE
            assert answer.result == b"from-b"
    finally:
        other.stop()


async def test_waits_are_exported_as_metrics(redis_server: RedisProcess, key_prefix: str) -> None:
    process = SidecarProcess(
        ["--redis-url", redis_server.url, "--key-prefix", key_prefix, "--metrics-listen", "127.0.0.1:0"]
    ).start()
    try:
        url = str(process.wait_log(lambda e: e.get("msg") == "telemetry")["metrics_url"])
        async with grpc.aio.insecure_channel(process.target) as channel:
            stub = dedup_pb2_grpc.DedupStub(channel)
            holder = await stub.Claim(claim(b"w1", lease_ms=60_000))
            waiter = asyncio.ensure_future(stub.Claim(claim(b"w1", wait_ms=20_000), timeout=30))
            deadline = time.monotonic() + 10
            while values(scrape(url), "dedup_claim_waiters") != {frozenset(): 1.0}:
                assert time.monotonic() < deadline, "the waiter never showed in dedup_claim_waiters"
                await asyncio.sleep(0.02)
            await stub.Commit(pb.CommitRequest(namespace=NS, id=b"w1", fencing_token=holder.fencing_token))
            assert (await waiter).outcome == pb.CLAIM_OUTCOME_DUPLICATE
            await stub.Claim(claim(b"w1", wait_ms=1_000))  # a DUPLICATE at once: no wait, not counted
        samples = scrape(url)
        assert values(samples, "dedup_claim_waiters") == {frozenset(): 0.0}
        assert values(samples, "dedup_claim_wait_total") == {
            frozenset({("namespace", "default"), ("ended", "committed")}): 1.0
        }
    finally:
        process.stop()


async def test_many_cancelled_waits_leave_no_waiter_behind(sidecar: RunningSidecar) -> None:
    """A small soak: 20 rounds of 10 waiting calls that give up (cancelled, or wait_ms over); nothing stays."""
    assert sidecar.waiters is not None
    await sidecar.stub.Claim(claim(b"soak", lease_ms=60_000))
    for round_number in range(20):
        calls = [sidecar.stub.Claim(claim(b"soak", wait_ms=20_000), timeout=30) for _ in range(5)]
        await until(waiting(sidecar, 5))
        short = [sidecar.stub.Claim(claim(b"soak", wait_ms=200), timeout=30) for _ in range(5)]
        answers = await asyncio.gather(*short)
        assert {a.outcome for a in answers} == {pb.CLAIM_OUTCOME_IN_PROGRESS}, round_number
        for call in calls:
            call.cancel()
        await until(waiting(sidecar, 0), within_s=5)
    assert sidecar.waiters._by_key == {}
    assert ended(sidecar, WaitEnd.TIMEOUT) == 100
    await until(lambda: ended(sidecar, WaitEnd.CANCELLED) == 100, within_s=5)


async def test_the_redis_py_store_path_wakes_waiters_too(redis_server: RedisProcess) -> None:
    async with running_sidecar(redis_server.url, redis_client="redis-py") as sc:
        assert sc.store.fast is None
        holder = await sc.stub.Claim(claim(b"py1", lease_ms=60_000))
        waiter = asyncio.ensure_future(sc.stub.Claim(claim(b"py1", wait_ms=20_000), timeout=30))
        await until(waiting(sc, 1))
        await sc.stub.Release(pb.ReleaseRequest(namespace=NS, id=b"py1", fencing_token=holder.fencing_token))
        answer = await waiter
        assert answer.outcome == pb.CLAIM_OUTCOME_ACQUIRED
        assert ended(sc, WaitEnd.RELEASED) == 1


async def test_a_stream_claim_batch_waits_per_item(sidecar: RunningSidecar) -> None:
    holder = await sidecar.stub.Claim(claim(b"sb1", lease_ms=60_000))
    outgoing: asyncio.Queue[pb.StreamRequest | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[pb.StreamRequest]:
        while (message := await outgoing.get()) is not None:
            yield message

    stream = sidecar.stub.Stream(requests(), timeout=30)
    batch = pb.ClaimBatchRequest(items=[claim(b"sb1", wait_ms=20_000), claim(b"sb2", wait_ms=20_000)])
    await outgoing.put(pb.StreamRequest(correlation_id=9, claim_batch=batch))
    await until(waiting(sidecar, 1))  # sb2 was free: only sb1 waits
    await sidecar.stub.Release(pb.ReleaseRequest(namespace=NS, id=b"sb1", fencing_token=holder.fencing_token))
    response = await stream.read()
    assert response.correlation_id == 9
    assert [r.outcome for r in response.claim_batch.results] == [pb.CLAIM_OUTCOME_ACQUIRED] * 2
    assert response.claim_batch.results[0].fencing_token > holder.fencing_token
    await outgoing.put(None)


async def test_an_answer_at_once_batch_validates_wait_ms_and_does_not_wait(redis_server: RedisProcess) -> None:
    """ADR 0018: a client coalescing waiting Claims asks for every answer at once; wait_ms is still checked."""
    async with running_sidecar(redis_server.url) as sc:
        holder = await sc.stub.Claim(claim(b"ao1", lease_ms=60_000))
        batch = pb.ClaimBatchRequest(items=[claim(b"ao1", wait_ms=20_000), claim(b"ao2", wait_ms=20_000)])
        batch.answer_at_once = True
        unary = await sc.stub.ClaimBatch(batch, timeout=30)
        streamed = await _over_stream(sc, batch)  # ao2 is now held by the unary batch's claim
        for answer, free_outcome in ((unary, pb.CLAIM_OUTCOME_ACQUIRED), (streamed, pb.CLAIM_OUTCOME_IN_PROGRESS)):
            held, free = answer.results
            assert held.outcome == pb.CLAIM_OUTCOME_IN_PROGRESS
            assert held.retry_after_ms > 50_000  # the holder's lease, not waited for
            assert free.outcome == free_outcome
        assert sc.waiters._by_key == {}
        assert holder.outcome == pb.CLAIM_OUTCOME_ACQUIRED

        too_long = pb.ClaimBatchRequest(items=[claim(b"ao3", wait_ms=10_000_000)], answer_at_once=True)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await sc.stub.ClaimBatch(too_long, timeout=30)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field_violations(refused.value) == ["items[0].wait_ms"]


async def _over_stream(sc: RunningSidecar, batch: pb.ClaimBatchRequest) -> pb.ClaimBatchResponse:
    stream = sc.stub.Stream(timeout=30)
    await stream.write(pb.StreamRequest(correlation_id=1, claim_batch=batch))
    response = await stream.read()
    await stream.done_writing()
    assert response.correlation_id == 1
    return response.claim_batch
