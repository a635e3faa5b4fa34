"""Every scenario of scenarios.yaml, through the Python client: sync and asyncio, each over the
stream transport (the default) and over unary calls."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from dedup_client import AsyncDedupClient, DedupClient

from tests.contract.conftest import SCENARIOS, Harness
from tests.contract.python_driver import Driver, load_scenarios, run_scenario

ALL = load_scenarios(SCENARIOS)
TRANSPORTS = ("stream", "unary")
scenarios = pytest.mark.parametrize("scenario", ALL, ids=[s["name"] for s in ALL])
transports = pytest.mark.parametrize("transport", TRANSPORTS)


@scenarios
@transports
def test_sync_client(contract_harness: Harness, scenario: dict[str, Any], transport: Any) -> None:
    target = contract_harness.target_for(scenario.get("target", "sidecar"))
    with (
        DedupClient(target, transport=transport) as client,
        DedupClient(contract_harness.target, transport=transport) as direct,
    ):
        driver = Driver(client, direct, contract_harness.toggle_control)
        asyncio.run(run_scenario(driver, f"python-{transport}", scenario))


@scenarios
@transports
async def test_asyncio_client(contract_harness: Harness, scenario: dict[str, Any], transport: Any) -> None:
    target = contract_harness.target_for(scenario.get("target", "sidecar"))
    async with (
        AsyncDedupClient(target, transport=transport) as client,
        AsyncDedupClient(contract_harness.target, transport=transport) as direct,
    ):
        driver = Driver(client, direct, contract_harness.toggle_control)
        await run_scenario(driver, f"python-aio-{transport}", scenario)
