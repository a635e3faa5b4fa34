"""Every scenario of scenarios.yaml, through the Python client, sync and asyncio."""

from __future__ import annotations

from typing import Any

import pytest
from dedup_client import AsyncDedupClient, DedupClient

from tests.contract.conftest import SCENARIOS, Harness
from tests.contract.python_driver import Driver, load_scenarios, run_scenario

ALL = load_scenarios(SCENARIOS)


@pytest.mark.parametrize("scenario", ALL, ids=[s["name"] for s in ALL])
def test_sync_client(contract_harness: Harness, scenario: dict[str, Any]) -> None:
    import asyncio

    target = contract_harness.target_for(scenario.get("target", "sidecar"))
    with DedupClient(target) as client:
        asyncio.run(run_scenario(Driver(client), "python", scenario))


@pytest.mark.parametrize("scenario", ALL, ids=[s["name"] for s in ALL])
async def test_asyncio_client(contract_harness: Harness, scenario: dict[str, Any]) -> None:
    target = contract_harness.target_for(scenario.get("target", "sidecar"))
    async with AsyncDedupClient(target) as client:
        await run_scenario(Driver(client), "python-aio", scenario)
