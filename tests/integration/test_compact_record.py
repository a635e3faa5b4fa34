"""The compact Check-only record (first-seen time alone) reads back like the full msgpack record."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sidecar.domain.outcomes import (
    CheckOutcome,
    ClaimOutcome,
    CommitOutcome,
    RecordState,
    ReleaseOutcome,
    RenewOutcome,
)
from sidecar.domain.store import CheckItem, ClaimItem, CommitItem, ReleaseItem, RenewItem
from sidecar.redis_store.factory import open_store
from sidecar.redis_store.store import RedisStore
from tests.support.redis_server import RedisProcess


@pytest.fixture(params=["fastpipe", "redis-py"])
async def store(request: pytest.FixtureRequest, redis_server: RedisProcess) -> AsyncIterator[RedisStore]:
    opened = open_store(redis_server.url, timeout_s=2, client=request.param)
    yield opened
    await opened.close()


async def test_plain_check_stores_only_the_time_and_reads_back_done(
    store: RedisStore, redis_server: RedisProcess, key_prefix: str
) -> None:
    key = f"{key_prefix}plain"
    (first,) = await store.check([CheckItem(key, 60_000, False, False, b"")])
    raw = redis_server.client().get(key)
    assert first.outcome is CheckOutcome.NEW  # type: ignore[union-attr]
    assert raw == str(first.first_seen_ms).encode()  # type: ignore[union-attr]
    assert redis_server.client().object("encoding", key) == b"int"

    (again,) = await store.check([CheckItem(key, 60_000, False, False, b"fp")])
    assert again.outcome is CheckOutcome.DUPLICATE  # type: ignore[union-attr]
    assert again.first_seen_ms == first.first_seen_ms  # type: ignore[union-attr]
    assert again.state is RecordState.DONE  # type: ignore[union-attr]
    assert again.result is None  # type: ignore[union-attr]

    inspection = await store.inspect(key)
    assert inspection.state is RecordState.DONE
    assert inspection.fencing_token == 0
    assert inspection.first_seen_ms == inspection.committed_ms == first.first_seen_ms  # type: ignore[union-attr]
    assert not inspection.has_fingerprint
    assert 0 < inspection.ttl_ms <= 60_000

    (claim,) = await store.claim([ClaimItem(key, 5_000, False, False, b"")])
    assert claim.outcome is ClaimOutcome.DUPLICATE  # type: ignore[union-attr]
    assert claim.committed_ms == first.first_seen_ms  # type: ignore[union-attr]
    (commit,) = await store.commit([CommitItem(key, 0, 60_000, False, None)])
    assert commit.outcome is CommitOutcome.LEASE_LOST  # type: ignore[union-attr]
    assert (await store.release(ReleaseItem(key, 0))).outcome is ReleaseOutcome.LEASE_LOST
    assert (await store.renew(RenewItem(key, 0, 5_000))).outcome is RenewOutcome.LEASE_LOST
    assert redis_server.client().get(key) == raw  # nothing rewrote it


@pytest.mark.parametrize(
    ("fingerprint", "sliding", "trace"),
    [(b"fp", False, b""), (b"", True, b""), (b"", False, b"00-trace")],
)
async def test_anything_more_than_the_time_keeps_the_full_record(
    store: RedisStore,
    redis_server: RedisProcess,
    key_prefix: str,
    fingerprint: bytes,
    sliding: bool,
    trace: bytes,
) -> None:
    key = f"{key_prefix}full"
    await store.check([CheckItem(key, 60_000, sliding, True, fingerprint, trace)])
    raw = redis_server.client().get(key)
    assert raw is not None
    assert raw[:1] == b"\x9a"  # msgpack array of 10
    (again,) = await store.check([CheckItem(key, 60_000, sliding, True, b"other" if fingerprint else b"")])
    expected = CheckOutcome.CONFLICT if fingerprint else CheckOutcome.DUPLICATE
    assert again.outcome is expected  # type: ignore[union-attr]
    assert again.trace_context == trace  # type: ignore[union-attr]


async def test_batch_of_mixed_parameters_keeps_each_items_own(
    store: RedisStore, redis_server: RedisProcess, key_prefix: str
) -> None:
    """Items that do not share window/flags/trace go per item (ARGV mode 'I'); in-batch order still holds."""
    a, b = f"{key_prefix}a", f"{key_prefix}b"
    items = [
        CheckItem(a, 60_000, False, True, b"fp-a"),
        CheckItem(b, 5_000, False, False, b""),
        CheckItem(a, 60_000, False, True, b"fp-other"),
        CheckItem(b, 60_000, True, False, b"", b"tc"),
    ]
    results = await store.check(items)
    outcomes = [r.outcome for r in results]  # type: ignore[union-attr]
    assert outcomes == [CheckOutcome.NEW, CheckOutcome.NEW, CheckOutcome.CONFLICT, CheckOutcome.DUPLICATE]
    client = redis_server.client()
    assert 30_000 < client.pttl(a) <= 60_000
    assert 0 < client.pttl(b) <= 5_000  # b's own window, not the batch's first
    assert client.get(b) is not None
    assert client.get(b).isdigit()  # type: ignore[union-attr]


async def test_empty_batch_touches_nothing(store: RedisStore) -> None:
    assert await store.check([]) == []
