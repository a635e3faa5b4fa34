"""Shared fixtures: a real Redis-compatible server per test worker, unique key prefixes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.inprocess import RunningSidecar, running_sidecar, unique_prefix
from tests.support.redis_server import RedisProcess


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    yield server
    server.close()


@pytest.fixture
def key_prefix() -> str:
    return unique_prefix()


@pytest.fixture
async def sidecar(redis_server: RedisProcess, key_prefix: str) -> AsyncIterator[RunningSidecar]:
    """An in-process sidecar with the built-in default policy, on the shared server."""
    async with running_sidecar(redis_server.url, key_prefix=key_prefix) as running:
        yield running
