"""RedisStore: the store port on one Redis endpoint, one script call per batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis.commands.core import AsyncScript

from sidecar.domain.errors import QuotaExceeded, StoreError
from sidecar.domain.outcomes import (
    CheckDecision,
    CheckOutcome,
    ClaimDecision,
    ClaimOutcome,
    CommitDecision,
    CommitOutcome,
    ForgetOutcome,
    Inspection,
    RecordState,
    ReleaseDecision,
    ReleaseOutcome,
    RenewDecision,
    RenewOutcome,
)
from sidecar.domain.store import (
    NO_ACKS,
    CheckItem,
    ClaimItem,
    CommitItem,
    ItemResults,
    Quota,
    ReleaseItem,
    RenewItem,
    ReplicaAcks,
    strictest,
)
from sidecar.redis_store.acks import AckMode, run_acked
from sidecar.redis_store.check_fast import Command, FastCheck, supported
from sidecar.redis_store.connection import RedisClient
from sidecar.redis_store.errors import to_store_error
from sidecar.redis_store.fastpipe import FastScripts
from sidecar.redis_store.faults import reads_replies
from sidecar.redis_store.scripts import script_sources
from sidecar.redis_store.slot_tags import in_slot_of, slot_tag
from sidecar.telemetry.spans import store_span

_STATES = {1: RecordState.ABSENT, 2: RecordState.IN_PROGRESS, 3: RecordState.DONE}
_CHECK_OVER_QUOTA = 4
_CLAIM_OVER_QUOTA = 5


def _flag(value: bool) -> bytes:
    return b"1" if value else b"0"


def _result(has_result: int, result: bytes) -> bytes | None:
    return result if has_result else None


def _check_args(items: Sequence[CheckItem]) -> list[Any]:
    """check.lua's ARGV: the parameters once plus a fingerprint per item when the items share them
    (the usual batch: one namespace, one call), else every parameter per item."""
    first = items[0]
    shared = (first.window_ms, first.sliding, first.fingerprint_check, first.trace_context)
    if all((i.window_ms, i.sliding, i.fingerprint_check, i.trace_context) == shared for i in items):
        head = [b"S", first.window_ms, _flag(first.sliding), _flag(first.fingerprint_check), first.trace_context]
        return head + [item.fingerprint for item in items]
    args: list[Any] = [b"I"]
    for item in items:
        args += [
            item.window_ms,
            _flag(item.sliding),
            _flag(item.fingerprint_check),
            item.fingerprint,
            item.trace_context,
        ]
    return args


def _seen(
    outcome: int, first_seen: int, age: int, state: int, has_result: int, result: bytes, trace: bytes
) -> CheckDecision:
    """A Check reply item for an id seen before."""
    return CheckDecision(CheckOutcome(outcome), first_seen, age, _STATES[state], _result(has_result, result), trace)


def _over_quota_or_seen(item: list[Any]) -> CheckDecision | QuotaExceeded:
    return QuotaExceeded() if item[0] == _CHECK_OVER_QUOTA else _seen(*item)


class RedisStore:
    """Runs the state-machine scripts; maps replies to decisions and errors to StoreError."""

    def __init__(self, client: RedisClient, fast: FastScripts | None = None) -> None:
        self.client = client
        self.fast = fast  # when set, scripts run on the auto-pipelined connection (fastpipe.py)
        self.ack_mode = AckMode()  # set from the startup checks (acks.choose_mode)
        slot_tag(0)  # builds the slot-tag table (~0.2 s) now, not in the first Claim (in_slot_of)
        self._scripts: dict[str, AsyncScript] = {
            name: client.register_script(source) for name, source in script_sources().items()
        }
        self.check_path = "auto"  # auto: Check without Lua where the record allows it (check_fast.py); script
        self.fast_check: FastCheck | None = None  # set by use_server once the server's version is known

    def use_server(self, version: str) -> None:
        """Called with the server's version from the startup checks: turns Check without Lua on or off."""
        if self.check_path == "auto" and supported(version):
            if self.fast_check is None:
                self.fast_check = FastCheck(self._commands, send_packed=self._packed if self.fast is not None else None)
        else:
            self.fast_check = None

    async def _commands(self, commands: Sequence[Command]) -> list[Any]:
        """Plain commands in one round trip; replies in order, a Redis error reply as a value."""
        with _round_trip("check", len(commands), operation="SET"):
            if self.fast is not None:
                return await self.fast.pipe.execute_many(commands)
            pipe = self.client.pipeline(transaction=False)
            for command in commands:  # `get`: redis-py hands SET ... GET's reply back as is, not as a bool
                pipe.execute_command(*command, **({"get": True} if command[0] == "SET" else {}))
            return list(await pipe.execute(raise_on_error=False))

    async def _packed(self, packed: list[bytes], count: int) -> list[Any]:
        """_commands for `count` commands packed in RESP by the caller (FastPipe only)."""
        assert self.fast is not None  # use_server hands this to FastCheck only with FastPipe
        with _round_trip("check", count, operation="SET"):
            return await self.fast.pipe.execute_packed(packed, count)

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any], acks: ReplicaAcks = NO_ACKS) -> Any:
        with _round_trip(name, len(keys)):
            if acks.replicas:  # WAIT must follow the write on its connection: redis-py's pipeline
                return await run_acked(self.client, self._scripts[name], keys, args, acks, self.ack_mode)
            if self.fast is not None:
                return await self.fast.run(name, keys, args)
            return await self._scripts[name](keys=list(keys), args=list(args))

    def quota_counter(self, quota: Quota, record_key: str) -> tuple[str, int]:
        """The counter key and limit that guard a new record at `record_key` (cluster.py splits them per slot)."""
        return quota.key, quota.limit

    def _with_quotas(self, items: Sequence[CheckItem] | Sequence[ClaimItem]) -> tuple[list[str], list[Any]]:
        """KEYS, and the quota trailer that check.lua and claim.lua expect at the end of ARGV (prelude.lua)."""
        keys = [item.key for item in items]
        if all(item.quota is None for item in items):
            return keys, [0]
        counters: dict[str, int] = {}  # counter key -> its number in the trailer (1..Q)
        params: list[Any] = []
        numbers: list[int] = []
        for item in items:
            if item.quota is None:
                numbers.append(0)
                continue
            key, limit = self.quota_counter(item.quota, item.key)
            if key not in counters:
                counters[key] = len(counters) + 1
                params += [limit, item.quota.period_ms]
            numbers.append(counters[key])
        return keys + list(counters), [*params, *numbers, len(counters)]

    @reads_replies
    async def check(self, items: Sequence[CheckItem]) -> ItemResults[CheckDecision]:
        if not items:
            return []
        if self.fast_check is not None:
            return await self.fast_check.check(items, self._scripted_check)
        return await self._scripted_check(items)

    async def _scripted_check(self, items: Sequence[CheckItem]) -> ItemResults[CheckDecision]:
        keys, trailer = self._with_quotas(items)
        reply = await self._run("check", keys, _check_args(items) + trailer, strictest([i.acks for i in items]))
        new = CheckDecision(CheckOutcome.NEW, reply[0], 0, RecordState.DONE)  # frozen: one serves every NEW item
        return [new if item == 1 else _over_quota_or_seen(item) for item in reply[1:]]

    @reads_replies
    async def claim(self, items: Sequence[ClaimItem]) -> ItemResults[ClaimDecision]:
        args: list[Any] = []
        for item in items:
            args += [
                item.lease_ms,
                _flag(item.fingerprint_check),
                item.fingerprint,
                item.trace_context,
                item.wake_channel,
            ]
        keys, trailer = self._with_quotas(items)
        keys += [in_slot_of(item.fence, item.key) for item in items]  # fencing high-water marks (ADR 0002)
        reply = await self._run("claim", keys, args + trailer, strictest([i.acks for i in items]))
        return [
            QuotaExceeded()
            if outcome == _CLAIM_OVER_QUOTA
            else ClaimDecision(
                outcome=ClaimOutcome(outcome),
                fencing_token=token,
                lease_expires_ms=lease_expires,
                retry_after_ms=retry_after,
                first_seen_ms=first_seen,
                age_ms=age,
                committed_ms=committed,
                result=_result(has_result, result),
                trace_context=trace,
            )
            for (
                outcome,
                token,
                lease_expires,
                retry_after,
                first_seen,
                age,
                committed,
                has_result,
                result,
                trace,
            ) in reply[1:]
        ]

    @reads_replies
    async def commit(self, items: Sequence[CommitItem]) -> ItemResults[CommitDecision]:
        args: list[Any] = []
        for item in items:
            args += [
                str(item.fencing_token),
                item.window_ms,
                _flag(item.sliding),
                _flag(item.result is not None),
                item.result or b"",
                item.trace_context,
            ]
        reply = await self._run("commit", [item.key for item in items], args, strictest([i.acks for i in items]))
        return [
            CommitDecision(outcome=CommitOutcome(outcome), committed_ms=committed, expires_ms=expires)
            for outcome, committed, expires in reply[1:]
        ]

    @reads_replies
    async def release(self, item: ReleaseItem) -> ReleaseDecision:
        reply = await self._run("release", [item.key], [str(item.fencing_token)], item.acks)
        return ReleaseDecision(outcome=ReleaseOutcome(reply))

    @reads_replies
    async def renew(self, item: RenewItem) -> RenewDecision:
        outcome, expires = await self._run("renew", [item.key], [str(item.fencing_token), item.lease_ms], item.acks)
        return RenewDecision(outcome=RenewOutcome(outcome), lease_expires_ms=expires)

    @reads_replies
    async def inspect(self, key: str) -> Inspection:
        (state, token, first_seen, committed, lease_expires, ttl, has_fp, has_result, result, now) = await self._run(
            "inspect", [key], []
        )
        return Inspection(
            state=_STATES[state],
            fencing_token=token,
            first_seen_ms=first_seen,
            committed_ms=committed,
            lease_expires_ms=lease_expires,
            ttl_ms=ttl,
            has_fingerprint=bool(has_fp),
            result=_result(has_result, result),
            now_ms=now,
        )

    @reads_replies
    async def forget(self, key: str) -> ForgetOutcome:
        try:
            deleted = await self.client.delete(key)
        except Exception as err:
            raise to_store_error(err) from err
        return ForgetOutcome.FORGOTTEN if deleted else ForgetOutcome.ABSENT

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except Exception as err:
            raise to_store_error(err) from err

    async def close(self) -> None:
        if self.fast is not None:
            await self.fast.close()
        await self.client.aclose()


@contextmanager
def _round_trip(name: str, count: int, **attributes: str) -> Iterator[None]:
    """One Redis round trip: its span, and every Redis failure in it raised as a StoreError."""
    try:
        with store_span(name, count, **attributes):
            yield
    except StoreError:
        raise
    except Exception as err:
        raise to_store_error(err) from err
