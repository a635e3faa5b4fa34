"""Check without Lua, the parts without I/O: version gate, eligibility, compact marks, the clock estimate."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from sidecar.domain.store import CheckItem, Quota, ReplicaAcks
from sidecar.redis_store.check_fast import Command, RedisClock, compact_time, eligible, supported


@pytest.mark.parametrize(
    ("version", "expected"),
    [("7.0.0", True), ("7.0.15", True), ("7.2.4", True), ("8.1.0", True), ("6.2.14", False), ("5.0", False),
     ("unknown", False), ("", False)],
)  # fmt: skip
def test_set_nx_get_needs_7_0(version: str, expected: bool) -> None:
    assert supported(version) is expected


def test_only_what_check_lua_would_store_compact_is_eligible() -> None:
    plain = CheckItem("k", 1000, False, True, b"")
    assert eligible(plain)
    assert not eligible(CheckItem("k", 1000, False, False, b"fp"))
    assert not eligible(CheckItem("k", 1000, True, False, b""))
    assert not eligible(CheckItem("k", 1000, False, False, b"", b"00-trace"))
    assert not eligible(CheckItem("k", 1000, False, False, b"", quota=Quota("q", 1, 1000)))
    assert not eligible(CheckItem("k", 1000, False, False, b"", acks=ReplicaAcks(1, 100)))


def test_compact_marks_are_decimal_and_msgpack_is_not() -> None:
    assert compact_time(b"1712345678901") == 1712345678901
    assert compact_time(b"\x9a\xa1D") is None
    assert compact_time(b"") is None


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_clock_follows_redis_time_and_advances_monotonically() -> None:
    local = FakeTime()
    clock = RedisClock(refresh_s=5.0, monotonic=local)
    sent: list[Sequence[Command]] = []

    async def send(commands: Sequence[Command]) -> list[Any]:
        sent.append(commands)
        local.now += 0.002  # a 2 ms round trip; Redis read its clock in the middle
        return [[b"1700000000", b"500000"]]

    await clock.fresh(send)
    assert sent == [[("TIME",)]]
    assert clock.now_ms() == 1_700_000_000_500 + 1  # one ms after the middle of the round trip
    local.now += 1.0
    assert clock.now_ms() == 1_700_000_001_501
    await clock.fresh(send)  # fresh enough: no TIME
    assert len(sent) == 1
    local.now += 10.0
    await clock.fresh(send)  # stale: refreshed in the background, the old estimate serves meanwhile
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(sent) == 2
    assert clock.now_ms() == 1_700_000_000_500 + 1


def test_packed_marks_are_what_hiredis_packs() -> None:
    import hiredis

    from sidecar.domain.store import CheckItem
    from sidecar.redis_store.check_fast import packed_marks

    items = [
        CheckItem("dedup:orders:{AAAAAAAAAAAAAAAAAAAAAA}", 86_400_000, False, False, b""),
        CheckItem("dedup:orders:{BBBBBBBBBBBBBBBBBBBBBB}", 5, False, False, b""),
        CheckItem("pré:ns:{CCCCCCCCCCCCCCCCCCCCCC}", 86_400_000, False, False, b""),
    ]
    stamp = b"1764554400123"
    expected = [hiredis.pack_command(("SET", i.key, stamp, "NX", "PX", i.window_ms, "GET")) for i in items]
    assert packed_marks(items, stamp) == expected
