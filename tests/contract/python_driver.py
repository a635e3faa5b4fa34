"""Runs one scenario of scenarios.yaml through the Python client (sync or asyncio)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from dedup_client import AsyncDedupClient, DedupClient, DedupError

DEFAULT_NS = "contract"
DEFAULT_DEADLINE_MS = 5000


def load_scenarios(path: Path) -> list[dict[str, Any]]:
    scenarios: list[dict[str, Any]] = yaml.safe_load(path.read_text())["scenarios"]
    return scenarios


class ScenarioRun:
    """The state of one run: its ids ($id, $id2) and saved fencing tokens."""

    def __init__(self, language: str, scenario: dict[str, Any]) -> None:
        suffix = uuid.uuid4().hex[:10]
        self.ids = {
            "$id": f"{language}-{scenario['name']}-{suffix}",
            "$id2": f"{language}-{scenario['name']}-{suffix}-2",
        }
        self.tokens: dict[str, int] = {}
        self.name = scenario["name"]

    def id(self, raw: str) -> str:
        return self.ids.get(raw, raw)

    def token(self, raw: str) -> int:
        return self.tokens[raw.removeprefix("$")]


Call = Callable[[], Awaitable[Any]]


class Driver:
    """Adapts a sync or asyncio client to awaitable calls."""

    def __init__(self, client: DedupClient | AsyncDedupClient) -> None:
        self.client = client

    async def call(self, verb: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.client, verb)
        if isinstance(self.client, AsyncDedupClient):
            return await method(*args, **kwargs)
        return method(*args, **kwargs)

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


def _name(value: Any) -> str | None:
    return None if value is None else str(value.value)


async def _invoke(driver: Driver, run: ScenarioRun, step: dict[str, Any], timeout_s: float) -> Any:
    op, ns, id = step["op"], step.get("ns", DEFAULT_NS), run.id(str(step.get("id", "")))
    timeout = timeout_s
    fingerprint, window_ms, lease_ms = step.get("fingerprint"), step.get("window_ms", 0), step.get("lease_ms", 0)
    match op:
        case "check":
            return await driver.call("check", ns, id, fingerprint=fingerprint, window_ms=window_ms, timeout=timeout)
        case "claim":
            return await driver.call("claim", ns, id, fingerprint=fingerprint, lease_ms=lease_ms, timeout=timeout)
        case "commit":
            return await driver.call(
                "commit",
                ns,
                id,
                run.token(step["token"]),
                result=step.get("result"),
                window_ms=window_ms,
                timeout=timeout,
            )
        case "release":
            return await driver.call("release", ns, id, run.token(step["token"]), timeout=timeout)
        case "renew":
            return await driver.call("renew", ns, id, run.token(step["token"]), lease_ms=lease_ms, timeout=timeout)
        case "inspect":
            return await driver.call("inspect", ns, id, timeout=timeout)
        case "check_batch" | "claim_batch":
            return await driver.call(op, ns, [run.id(str(i)) for i in step["ids"]], timeout=timeout)
        case "concurrent_claims":
            return await driver.concurrent_claims(ns, id, int(step["n"]), timeout)
        case "await_state":
            deadline = time.monotonic() + step["within_ms"] / 1000
            while True:
                seen = await driver.call("inspect", ns, id, timeout=timeout)
                if seen.state.value == step["state"]:
                    return seen
                assert time.monotonic() < deadline, f"state {step['state']} not seen within {step['within_ms']} ms"
                await asyncio.sleep(0.02)  # bounded polling, as the schema allows
    raise AssertionError(f"unknown op {op!r}")


def _check_expectations(run: ScenarioRun, step: dict[str, Any], result: Any) -> None:
    expect = step.get("expect", {})
    where = f"{run.name}: {step}"
    if "outcome" in expect:
        assert _name(result.outcome) == expect["outcome"], f"{where}: got {result}"
    if "state" in expect:
        assert _name(result.state) == expect["state"], f"{where}: got {result}"
    if "result" in expect:
        assert result.result == expect["result"].encode(), f"{where}: got {result}"
    if "token_greater_than" in expect:
        assert result.fencing_token > run.token(expect["token_greater_than"]), f"{where}: got {result}"
    if "outcomes" in expect:
        assert [_name(r.outcome) for r in result] == expect["outcomes"], f"{where}: got {result}"
    if "counts" in expect:
        counts: dict[str, int] = {}
        for r in result:
            counts[str(_name(r.outcome))] = counts.get(str(_name(r.outcome)), 0) + 1
        assert counts == expect["counts"], f"{where}: got {counts}"
    if "save_token" in step:
        run.tokens[step["save_token"]] = result.fencing_token


async def run_scenario(driver: Driver, language: str, scenario: dict[str, Any]) -> None:
    run = ScenarioRun(language, scenario)
    for step in scenario["steps"]:
        expect = step.get("expect", {})
        timeout = step.get("deadline_ms", DEFAULT_DEADLINE_MS) / 1000
        failure: DedupError | None = None
        try:
            result = await _invoke(driver, run, step, timeout)
        except DedupError as err:
            failure = err
        if failure is not None:
            assert "error" in expect, f"{run.name}: {step}: unexpected {failure!r}"
            assert failure.code.name == expect["error"], f"{run.name}: {step}: got {failure!r}"
            if "field_violation" in expect:
                fields = [v.field for v in failure.field_violations]
                assert expect["field_violation"] in fields, f"{run.name}: {step}: violations {fields}"
            continue
        assert "error" not in expect, f"{run.name}: {step}: expected {expect['error']}, got {result}"
        _check_expectations(run, step, result)
