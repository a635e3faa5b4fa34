"""Runs one scenario of scenarios.yaml through the Python client (sync or asyncio, stream or unary)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dedup_client import (
    AsyncDedupClient,
    AsyncEffectivelyOnce,
    AsyncLease,
    DedupClient,
    DedupError,
    EffectivelyOnce,
    Lease,
    LeaseLostError,
    Outcome,
    RecordState,
)

DEFAULT_NS = "contract"
DEFAULT_DEADLINE_MS = 5000


def load_scenarios(path: Path) -> list[dict[str, Any]]:
    scenarios: list[dict[str, Any]] = yaml.safe_load(path.read_text())["scenarios"]
    return scenarios


class HandlerFailure(Exception):
    """The handler's own error (`fail: true`): must come back from the helper unchanged."""


class ScenarioRun:
    """The state of one run: its ids ($id, $id2), saved fencing tokens and async calls."""

    def __init__(self, language: str, scenario: dict[str, Any]) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.ids = {
            "$id": f"{language}-{scenario['name']}-{suffix}",
            "$id2": f"{language}-{scenario['name']}-{suffix}-2",
        }
        self.tokens: dict[str, int] = {}
        self.pending: dict[str, asyncio.Task[Any]] = {}
        self.name = scenario["name"]

    def id(self, raw: str) -> str:
        return self.ids.get(raw, raw)

    def token(self, raw: str) -> int:
        return self.tokens[raw.removeprefix("$")]


@dataclass
class OnceReport:
    """What a `once` step observed: the helper's outcome, and whether the handler ran."""

    outcome: Outcome[Any]
    handler_ran: bool


def cut(control: str, ms: int) -> None:
    """Asks the toggle proxy to cut every connection for `ms` milliseconds; waits for its "ok"."""
    host, port = control.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as conn, conn.makefile("rw") as stream:
        stream.write(f"cut {ms}\n")
        stream.flush()
        assert stream.readline().strip() == "ok"


def poll(predicate: Callable[[], bool], within_ms: int, what: str) -> None:
    deadline = time.monotonic() + within_ms / 1000
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not seen within {within_ms} ms"
        time.sleep(0.02)  # bounded polling, as the schema allows


class Driver:
    """Adapts a sync or asyncio client (and a second, `direct` one on $DEDUP_TARGET) to awaitable steps."""

    def __init__(
        self,
        client: DedupClient | AsyncDedupClient,
        direct: DedupClient | AsyncDedupClient | None = None,
        toggle_control: str = "",
    ) -> None:
        self.client = client
        self.direct = direct or client
        self.toggle_control = toggle_control

    @property
    def is_async(self) -> bool:
        return isinstance(self.client, AsyncDedupClient)

    async def call(self, verb: str, *args: Any, direct: bool = False, **kwargs: Any) -> Any:
        method = getattr(self.direct if direct else self.client, verb)
        if self.is_async:
            return await method(*args, **kwargs)
        return await asyncio.to_thread(method, *args, **kwargs)  # threads: async steps run alongside

    async def concurrent_claims(self, ns: str, id: str, n: int, timeout_s: float) -> list[Any]:
        if isinstance(self.client, AsyncDedupClient):
            return list(await asyncio.gather(*(self.client.claim(ns, id, timeout=timeout_s) for _ in range(n))))
        client = self.client
        start = threading.Barrier(n)

        def one() -> Any:
            start.wait(10)
            return client.claim(ns, id, timeout=timeout_s)

        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(lambda _: one(), range(n)))

    async def once(self, run: ScenarioRun, step: dict[str, Any], ns: str, id: str) -> OnceReport:
        options: dict[str, Any] = {
            key: step[key] for key in ("lease_ms", "renew_every_ms", "wait_ms", "window_ms") if key in step
        }
        result = step.get("result")
        encode: Callable[[Any], bytes | None] = lambda value: None if value is None else str(value).encode()  # noqa: E731
        actions: list[dict[str, Any]] = step.get("actions", [])
        ran: list[bool] = []
        if isinstance(self.client, AsyncDedupClient):
            async_once = AsyncEffectivelyOnce(self.client, ns, encode=encode, **options)

            async def async_handler(lease: AsyncLease) -> str | None:
                ran.append(True)
                for action in actions:
                    await self._async_action(run, action, ns, id, lease)
                return result

            outcome = await async_once.run(id, async_handler, fingerprint=step.get("fingerprint"))
            return OnceReport(outcome, bool(ran))
        sync_once = EffectivelyOnce(self.client, ns, encode=encode, **options)

        def handler(lease: Lease) -> str | None:
            ran.append(True)
            for action in actions:
                self._sync_action(run, action, ns, id, lease)
            return result

        outcome = await asyncio.to_thread(sync_once.run, id, handler, fingerprint=step.get("fingerprint"))
        return OnceReport(outcome, bool(ran))

    def _sync_action(self, run: ScenarioRun, action: dict[str, Any], ns: str, id: str, lease: Lease) -> None:
        direct = self.direct
        assert isinstance(direct, DedupClient)
        if "cut" in action:
            cut(self.toggle_control, int(action["cut"]))
        elif action.get("forget"):
            direct.forget(ns, id)
        elif "claim_other" in action:
            claim = direct.claim(ns, id)
            assert claim.acquired, f"claim_other: {claim}"
            run.tokens[action["claim_other"]] = claim.fencing_token
        elif "await_absent" in action:
            poll(lambda: direct.inspect(ns, id).state is RecordState.ABSENT, int(action["await_absent"]), "ABSENT")
        elif "ensure" in action:
            if action["ensure"] == "ok":
                lease.ensure()
                assert not lease.lost, "lease.lost after a successful ensure()"
            else:
                try:
                    lease.ensure()
                except LeaseLostError:
                    pass
                else:
                    raise AssertionError("ensure() succeeded on a lost lease")
                assert lease.lost, "lease.lost false after ensure() failed"
        elif action.get("fail"):
            raise HandlerFailure("the handler failed")
        else:
            raise AssertionError(f"unknown action {action}")

    async def _async_action(
        self, run: ScenarioRun, action: dict[str, Any], ns: str, id: str, lease: AsyncLease
    ) -> None:
        direct = self.direct
        assert isinstance(direct, AsyncDedupClient)
        if "cut" in action:
            await asyncio.to_thread(cut, self.toggle_control, int(action["cut"]))
        elif action.get("forget"):
            await direct.forget(ns, id)
        elif "claim_other" in action:
            claim = await direct.claim(ns, id)
            assert claim.acquired, f"claim_other: {claim}"
            run.tokens[action["claim_other"]] = claim.fencing_token
        elif "await_absent" in action:
            deadline = time.monotonic() + int(action["await_absent"]) / 1000
            while (await direct.inspect(ns, id)).state is not RecordState.ABSENT:
                assert time.monotonic() < deadline, "ABSENT not seen in time"
                await asyncio.sleep(0.02)  # bounded polling, as the schema allows
        elif "ensure" in action:
            if action["ensure"] == "ok":
                await lease.ensure()
                assert not lease.lost, "lease.lost after a successful ensure()"
            else:
                try:
                    await lease.ensure()
                except LeaseLostError:
                    pass
                else:
                    raise AssertionError("ensure() succeeded on a lost lease")
                assert lease.lost, "lease.lost false after ensure() failed"
        elif action.get("fail"):
            raise HandlerFailure("the handler failed")
        else:
            raise AssertionError(f"unknown action {action}")


def _name(value: Any) -> str | None:
    return None if value is None else str(value.value)


async def _invoke(driver: Driver, run: ScenarioRun, step: dict[str, Any], timeout_s: float) -> Any:
    op, ns, id = step["op"], step.get("ns", DEFAULT_NS), run.id(str(step.get("id", "")))
    timeout, direct = timeout_s, bool(step.get("direct", False))
    fingerprint, window_ms, lease_ms = step.get("fingerprint"), step.get("window_ms", 0), step.get("lease_ms", 0)
    match op:
        case "check":
            return await driver.call(
                "check", ns, id, fingerprint=fingerprint, window_ms=window_ms, timeout=timeout, direct=direct
            )
        case "claim":
            return await driver.call(
                "claim",
                ns,
                id,
                fingerprint=fingerprint,
                lease_ms=lease_ms,
                wait_ms=step.get("wait_ms", 0),
                timeout=timeout,
                direct=direct,
            )
        case "commit":
            return await driver.call(
                "commit",
                ns,
                id,
                run.token(step["token"]),
                result=step.get("result"),
                window_ms=window_ms,
                timeout=timeout,
                direct=direct,
            )
        case "release":
            return await driver.call("release", ns, id, run.token(step["token"]), timeout=timeout, direct=direct)
        case "renew":
            return await driver.call(
                "renew", ns, id, run.token(step["token"]), lease_ms=lease_ms, timeout=timeout, direct=direct
            )
        case "inspect":
            return await driver.call("inspect", ns, id, timeout=timeout, direct=direct)
        case "check_batch" | "claim_batch":
            return await driver.call(op, ns, [run.id(str(i)) for i in step["ids"]], timeout=timeout, direct=direct)
        case "concurrent_claims":
            return await driver.concurrent_claims(ns, id, int(step["n"]), timeout)
        case "once":
            return await driver.once(run, step, ns, id)
        case "await_state":
            deadline = time.monotonic() + step["within_ms"] / 1000
            while True:
                seen = await driver.call("inspect", ns, id, timeout=timeout, direct=direct)
                if seen.state.value == step["state"]:
                    return seen
                assert time.monotonic() < deadline, f"state {step['state']} not seen within {step['within_ms']} ms"
                await asyncio.sleep(0.02)  # bounded polling, as the schema allows
    raise AssertionError(f"unknown op {op!r}")


def _check_once(run: ScenarioRun, step: dict[str, Any], report: OnceReport) -> None:
    expect, outcome, where = step.get("expect", {}), report.outcome, f"{run.name}: {step}"
    if "status" in expect:
        assert outcome.status.value == expect["status"], f"{where}: got {outcome}"
    if "action" in expect:
        assert outcome.action.value == expect["action"], f"{where}: got {outcome.action}"
        assert outcome.should_ack == (expect["action"] == "ACK"), f"{where}: should_ack {outcome.should_ack}"
    if "result" in expect:
        assert outcome.stored_result == expect["result"].encode(), f"{where}: got {outcome}"
    if "handler_ran" in expect:
        assert report.handler_ran == expect["handler_ran"], f"{where}: handler_ran {report.handler_ran}"
    if "token_from" in expect:
        assert outcome.fencing_token > run.token(expect["token_from"]), f"{where}: got {outcome}"


def _check_expectations(run: ScenarioRun, step: dict[str, Any], result: Any) -> None:
    if isinstance(result, OnceReport):
        _check_once(run, step, result)
        return
    expect = step.get("expect", {})
    where = f"{run.name}: {step}"
    if "outcome" in expect:
        assert _name(result.outcome) == expect["outcome"], f"{where}: got {result}"
    if "state" in expect:
        assert _name(result.state) == expect["state"], f"{where}: got {result}"
    if "result" in expect:
        assert result.result == expect["result"].encode(), f"{where}: got {result}"
    for key in ("token_greater_than", "token_from"):
        if key in expect:
            assert _name(result.outcome) == "ACQUIRED", f"{where}: got {result}"
            assert result.fencing_token > run.token(expect[key]), f"{where}: got {result}"
    if "outcomes" in expect:
        assert [_name(r.outcome) for r in result] == expect["outcomes"], f"{where}: got {result}"
    if "counts" in expect:
        counts: dict[str, int] = {}
        for r in result:
            counts[str(_name(r.outcome))] = counts.get(str(_name(r.outcome)), 0) + 1
        assert counts == expect["counts"], f"{where}: got {counts}"
    if "save_token" in step:
        run.tokens[step["save_token"]] = result.fencing_token


async def _finish(run: ScenarioRun, step: dict[str, Any], work: Any) -> None:
    """Awaits one step's work and checks its expectations (error, or result)."""
    expect = step.get("expect", {})
    failure: DedupError | HandlerFailure | None = None
    try:
        result = await work
    except (DedupError, HandlerFailure) as err:
        failure = err
    if failure is not None:
        assert "error" in expect, f"{run.name}: {step}: unexpected {failure!r}"
        if isinstance(failure, HandlerFailure):
            assert expect["error"] == "HANDLER", f"{run.name}: {step}: got the handler's error"
            return
        assert failure.code.name == expect["error"], f"{run.name}: {step}: got {failure!r}"
        if "field_violation" in expect:
            fields = [v.field for v in failure.field_violations]
            assert expect["field_violation"] in fields, f"{run.name}: {step}: violations {fields}"
        return
    assert "error" not in expect, f"{run.name}: {step}: expected {expect['error']}, got {result}"
    _check_expectations(run, step, result)


async def run_scenario(driver: Driver, language: str, scenario: dict[str, Any]) -> None:
    run = ScenarioRun(language, scenario)
    try:
        for step in scenario["steps"]:
            timeout = step.get("deadline_ms", DEFAULT_DEADLINE_MS) / 1000
            if step["op"] == "join":
                started = run.pending.pop(step["name"])
                await _finish(run, {**step, "op": "join"}, asyncio.wait_for(started, 60))
                continue
            work = _invoke(driver, run, step, timeout)
            if "async" in step:
                run.pending[step["async"]] = asyncio.create_task(work)
                await asyncio.sleep(0)  # let it start; the scenarios hold whichever comes first
                continue
            await _finish(run, step, work)
        assert not run.pending, f"{run.name}: async calls never joined: {list(run.pending)}"
    finally:
        for task in run.pending.values():
            task.cancel()
