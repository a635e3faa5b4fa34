"""The Python effectively-once helper (sync and asyncio) against the live contract sidecar."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dedup_client import (
    Action,
    AsyncDedupClient,
    AsyncEffectivelyOnce,
    AsyncLease,
    ClaimOutcome,
    DedupClient,
    EffectivelyOnce,
    InvalidArgumentError,
    Lease,
    LeaseLostError,
    RecordState,
    Status,
    UnavailableError,
)
from dedup_client.sinks import SQLITE_APPLIED_DDL, mark_applied

from tests.contract.conftest import Harness
from tests.contract.python_driver import cut

NS = "contract"


def fresh_id() -> str:
    return f"py-once-{uuid.uuid4().hex[:12]}"


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Bounded polling for a condition (never a bare sleep as synchronisation)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def client(contract_harness: Harness) -> Iterator[DedupClient]:
    with DedupClient(contract_harness.target) as c:
        yield c


def test_processed_then_duplicate_with_stored_result(client: DedupClient) -> None:
    once = EffectivelyOnce(client, NS, encode=lambda receipt: receipt.encode())
    id, calls = fresh_id(), []

    def handler(lease: Lease) -> str:
        calls.append(lease.token)
        return f"receipt-{int(lease)}"

    first = once.run(id, handler)
    second = once.run(id, handler)
    assert first.status is Status.PROCESSED
    assert first.should_ack
    assert first.value == f"receipt-{first.fencing_token}"
    assert second.status is Status.DUPLICATE
    assert second.should_ack
    assert second.stored_result == first.value.encode()
    assert calls == [first.fencing_token]


def test_handler_error_releases_and_redelivery_processes(client: DedupClient) -> None:
    once = EffectivelyOnce(client, NS)
    id = fresh_id()

    def failing(lease: Lease) -> None:
        raise RuntimeError("downstream down")

    with pytest.raises(RuntimeError, match="downstream down"):
        once.run(id, failing)
    assert client.inspect(NS, id).state is RecordState.ABSENT  # released at once, not after the lease
    assert once.run(id, lambda lease: "ok").status is Status.PROCESSED


def test_in_progress_elsewhere_does_not_run_the_handler(client: DedupClient) -> None:
    id = fresh_id()
    assert client.claim(NS, id, lease_ms=60_000).acquired
    ran: list[Lease] = []
    outcome = EffectivelyOnce(client, NS, wait_ms=0).run(id, ran.append)
    assert outcome.status is Status.IN_PROGRESS
    assert not outcome.should_ack
    assert outcome.retry_after_ms > 0
    assert ran == []


def test_conflict_is_reported(client: DedupClient) -> None:
    id = fresh_id()
    client.check(NS, id, fingerprint="a")
    outcome = EffectivelyOnce(client, NS).run(id, lambda lease: None, fingerprint="b")
    assert outcome.status is Status.CONFLICT
    assert not outcome.should_ack


def test_lease_is_renewed_while_the_handler_runs(client: DedupClient) -> None:
    once = EffectivelyOnce(client, NS, lease_ms=1_000, renew_every_ms=50)
    id = fresh_id()

    def slow(lease: Lease) -> None:
        first = client.inspect(NS, id).lease_expires_unix_ms
        wait_until(lambda: client.inspect(NS, id).lease_expires_unix_ms > first)

    assert once.run(id, slow).status is Status.PROCESSED


def test_commit_after_the_lease_ended_reclaims_and_commits(client: DedupClient) -> None:
    """The effect is done and nobody took the id: re-claim, commit at once, PROCESSED."""
    once = EffectivelyOnce(client, NS, lease_ms=200, renew_every_ms=600_000, encode=str.encode)
    id = fresh_id()

    def outlives_lease(lease: Lease) -> str:
        wait_until(lambda: client.inspect(NS, id).state is RecordState.ABSENT)
        assert lease.lost  # its time ran out by the local clock too
        return "done"

    outcome = once.run(id, outlives_lease)
    assert outcome.status is Status.PROCESSED
    assert outcome.value == "done"
    assert client.claim(NS, id).result == b"done"


def test_commit_after_another_holder_took_over_is_lease_lost(client: DedupClient) -> None:
    once = EffectivelyOnce(client, NS, lease_ms=200, renew_every_ms=600_000)
    id = fresh_id()
    other: list[int] = []

    def outlives_lease(lease: Lease) -> str:
        wait_until(lambda: client.inspect(NS, id).state is RecordState.ABSENT)
        claim = client.claim(NS, id, lease_ms=60_000)
        assert claim.outcome is ClaimOutcome.ACQUIRED
        other.append(claim.fencing_token)
        return "done"

    outcome = once.run(id, outlives_lease)
    assert outcome.status is Status.LEASE_LOST
    assert outcome.action is Action.ACK
    assert outcome.should_ack
    assert outcome.value == "done"
    assert client.inspect(NS, id).fencing_token == other[0]  # the new holder's lease is untouched


def test_ensure_renews_and_raises_once_the_lease_is_gone(client: DedupClient) -> None:
    once = EffectivelyOnce(client, NS, lease_ms=5_000, renew_every_ms=600_000)
    id = fresh_id()
    seen: list[str] = []

    def handler(lease: Lease) -> None:
        lease.ensure()
        seen.append("ok" if not lease.lost else "lost")
        client.forget(NS, id)
        with pytest.raises(LeaseLostError):
            lease.ensure()
        seen.append("lost" if lease.lost else "not lost")

    assert once.run(id, handler).status is Status.PROCESSED  # re-claimed: the record was absent
    assert seen == ["ok", "lost"]


def test_wait_ms_waits_for_the_holder_and_returns_its_result(client: DedupClient) -> None:
    id = fresh_id()
    holder = client.claim(NS, id, lease_ms=60_000)
    once = EffectivelyOnce(client, NS, wait_ms=20_000)
    box: list[object] = []
    thread = threading.Thread(target=lambda: box.append(once.run(id, lambda lease: "never")))
    thread.start()
    wait_until(lambda: thread.is_alive())
    client.commit(NS, id, holder.fencing_token, result="r-holder")
    thread.join(25)
    outcome = box[0]
    assert getattr(outcome, "status", None) is Status.DUPLICATE
    assert getattr(outcome, "stored_result", None) == b"r-holder"


def test_int_of_a_lease_is_its_token(client: DedupClient) -> None:
    tokens: list[tuple[int, int]] = []
    EffectivelyOnce(client, NS).run(fresh_id(), lambda lease: tokens.append((int(lease), lease.token)))
    assert tokens[0][0] == tokens[0][1] > 0


def test_renewal_notices_a_lost_lease(client: DedupClient) -> None:
    once = EffectivelyOnce(client, NS, lease_ms=5_000, renew_every_ms=30)
    id = fresh_id()
    with once.attempt(id) as attempt:
        assert attempt.acquired
        assert attempt.lease is not None
        assert not attempt.lease.wait_lost(timeout=0.05)  # still held
        client.forget(NS, id)  # an operator deletes the record under the holder
        assert attempt.lease.wait_lost(timeout=5)  # the next renewal finds it gone
        assert attempt.lease_lost
    assert attempt.outcome.status is Status.PROCESSED  # the record was absent: re-claimed and committed


def test_decorator_and_context_manager(client: DedupClient) -> None:
    once = EffectivelyOnce(client, NS)
    seen: list[tuple[int, str]] = []

    @once.handler
    def handle(lease: Lease, body: str) -> int:
        seen.append((lease.token, body))
        return len(body)

    id = fresh_id()
    assert handle(id, "hello").value == 5
    assert handle(id, "hello").status is Status.DUPLICATE
    assert len(seen) == 1

    id2 = fresh_id()
    with once.attempt(id2) as attempt:
        assert attempt.acquired
        attempt.result = b"stored"
    assert attempt.outcome.status is Status.PROCESSED
    with once.attempt(id2) as again:
        assert not again.acquired
    assert again.outcome.status is Status.DUPLICATE
    assert again.outcome.stored_result == b"stored"


class CountingClient(DedupClient):
    """Counts the Renew calls made for each id."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.renewed: dict[str, int] = {}

    def renew(self, namespace: str, id: bytes | str, fencing_token: int, **kwargs: Any) -> Any:
        key = id if isinstance(id, str) else id.decode()
        self.renewed[key] = self.renewed.get(key, 0) + 1
        return super().renew(namespace, id, fencing_token, **kwargs)


def _renew_thread_ends(once: EffectivelyOnce) -> None:
    """The helper's one renewing thread ends when it has nothing to renew (a second after its last turn)."""
    wait_until(lambda: not once._renewals.running, timeout_s=10)


def test_renewals_stop_with_the_call(contract_harness: Harness) -> None:
    """The lease is renewed while the handler runs and never after the call returned."""
    with CountingClient(contract_harness.target) as counting:
        once = EffectivelyOnce(counting, NS, renew_every_ms=10)
        id = fresh_id()

        def handler(lease: Lease) -> None:
            wait_until(lambda: counting.renewed.get(id, 0) >= 3)

        assert once.run(id, handler).status is Status.PROCESSED
        after = counting.renewed[id]
        other = fresh_id()  # a later message's renewals run on the same thread, beside nothing of `id`'s
        once.run(other, lambda lease: wait_until(lambda: counting.renewed.get(other, 0) >= 3))
        assert counting.renewed[id] == after
    _renew_thread_ends(once)


async def test_asyncio_helper(contract_harness: Harness) -> None:
    async with AsyncDedupClient(contract_harness.target) as client:
        once = AsyncEffectivelyOnce(client, NS, encode=bytes)
        id, calls = fresh_id(), []

        @once.handler
        async def handle(lease: AsyncLease, body: bytes) -> bytes:
            calls.append(lease.token)
            return body.upper()

        first = await handle(id, b"abc")
        second = await handle(id, b"abc")
        assert first.status is Status.PROCESSED
        assert first.value == b"ABC"
        assert second.status is Status.DUPLICATE
        assert second.stored_result == b"ABC"
        assert len(calls) == 1

        async def failing(lease: AsyncLease) -> None:
            raise ValueError("nope")

        id2 = fresh_id()
        with pytest.raises(ValueError, match="nope"):
            await once.run(id2, failing)
        assert (await client.inspect(NS, id2)).state is RecordState.ABSENT

        async with once.attempt(id2) as attempt:
            assert attempt.acquired
            attempt.result = b"r"
        assert attempt.outcome.status is Status.PROCESSED


async def test_asyncio_helper_renews(contract_harness: Harness) -> None:
    import asyncio

    async with AsyncDedupClient(contract_harness.target) as client:
        once = AsyncEffectivelyOnce(client, NS, lease_ms=1_000, renew_every_ms=50)
        id = fresh_id()

        async def slow(lease: AsyncLease) -> None:
            first = (await client.inspect(NS, id)).lease_expires_unix_ms
            deadline = time.monotonic() + 5
            while (await client.inspect(NS, id)).lease_expires_unix_ms <= first:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)

        assert (await once.run(id, slow)).status is Status.PROCESSED


def test_unix_socket_target(contract_harness: Harness) -> None:
    id = fresh_id()
    with DedupClient(contract_harness.unix_target) as client:
        assert client.check(NS, id).outcome is not None
    with DedupClient(contract_harness.target) as tcp:  # the same sidecar and store
        assert tcp.inspect(NS, id).state is RecordState.DONE


async def test_asyncio_unix_socket_target(contract_harness: Harness) -> None:
    async with AsyncDedupClient(contract_harness.unix_target.removeprefix("unix:")) as client:  # bare path works too
        assert (await client.claim(NS, fresh_id())).acquired


def test_transactional_sink_applies_once_across_a_lost_commit(client: DedupClient, tmp_path: Path) -> None:
    """The effect and its dedup_applied row in one transaction: a redelivery after a lost record skips it."""
    db = sqlite3.connect(tmp_path / "sink.db")
    db.execute(SQLITE_APPLIED_DDL)
    db.execute("CREATE TABLE ledger (id TEXT NOT NULL)")
    once = EffectivelyOnce(client, NS)
    id = fresh_id()

    def handler(lease: Lease) -> bool:
        with db:
            cur = db.cursor()
            first = mark_applied(cur, NS, id, lease, paramstyle="qmark")
            if first:
                cur.execute("INSERT INTO ledger VALUES (?)", (id,))
        return first

    assert once.run(id, handler).value is True
    client.forget(NS, id)  # the dedup record is gone (e.g. a store without persistence restarted)
    again = once.run(id, handler)
    assert again.status is Status.PROCESSED
    assert again.value is False  # the sink said: applied already
    assert db.execute("SELECT count(*) FROM ledger").fetchone() == (1,)
    db.close()


def test_unreachable_past_the_lease_raises_commit_not_recorded(contract_harness: Harness) -> None:
    """Commit is retried for the lease's life; when the lease is over and a last re-claim fails: UnavailableError."""
    id = fresh_id()
    with DedupClient(contract_harness.toggle_target) as client:
        once = EffectivelyOnce(client, NS, lease_ms=1_000)
        started = time.monotonic()
        try:
            with pytest.raises(UnavailableError, match="commit not recorded"):
                once.run(id, lambda lease: cut(contract_harness.toggle_control, 6_000))
        finally:
            cut(contract_harness.toggle_control, 0)  # ends the outage for the next test
        assert time.monotonic() - started >= 0.9  # it kept trying while the lease lasted
    with DedupClient(contract_harness.target) as direct:
        wait_until(lambda: direct.inspect(NS, id).state is RecordState.ABSENT)  # not released: it expired


def test_no_renewal_outlives_a_failing_handler(contract_harness: Harness) -> None:
    with CountingClient(contract_harness.target) as counting:
        id = fresh_id()

        def failing(lease: Lease) -> None:
            wait_until(lambda: counting.renewed.get(id, 0) >= 2)
            raise KeyError("boom")

        once = EffectivelyOnce(counting, NS, renew_every_ms=5)
        with pytest.raises(KeyError):
            once.run(id, failing)
        after = counting.renewed[id]
        other = fresh_id()
        once.run(other, lambda lease: wait_until(lambda: counting.renewed.get(other, 0) >= 3))
        assert counting.renewed[id] == after
    _renew_thread_ends(once)


async def test_asyncio_lease_sees_loss_and_ensure_fails(contract_harness: Harness) -> None:
    import asyncio

    async with AsyncDedupClient(contract_harness.target) as client:
        once = AsyncEffectivelyOnce(client, NS, lease_ms=5_000, renew_every_ms=30)
        id = fresh_id()
        seen: list[bool] = []

        async def handler(lease: AsyncLease) -> None:
            await lease.ensure()
            seen.append(lease.lost)
            await client.forget(NS, id)
            await asyncio.wait_for(lease.wait_lost(), 5)  # the heartbeat notices
            seen.append(lease.lost)
            with pytest.raises(LeaseLostError):
                await lease.ensure()

        assert (await once.run(id, handler)).status is Status.PROCESSED  # absent: re-claimed and committed
        assert seen == [False, True]

        async def failing(lease: AsyncLease) -> None:
            raise KeyError("boom")

        with pytest.raises(KeyError):
            await once.run(fresh_id(), failing)
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "dedup-renew"]


async def test_one_callers_bad_input_does_not_fail_coalesced_neighbours(contract_harness: Harness) -> None:
    """The sidecar refuses a batch with one bad item as a whole; the stream re-sends the calls one by one."""
    import asyncio

    async with AsyncDedupClient(contract_harness.target) as client:
        await client.check(NS, fresh_id())  # the stream is open
        good = [fresh_id() for _ in range(5)]
        results = await asyncio.gather(
            *(client.claim(NS, id) for id in good[:2]),
            client.claim(NS, ""),
            *(client.claim(NS, id) for id in good[2:]),
            return_exceptions=True,
        )
    bad = results.pop(2)
    assert isinstance(bad, InvalidArgumentError)
    assert [v.field for v in bad.field_violations] == ["id"]
    assert all(getattr(r, "acquired", False) for r in results), results
