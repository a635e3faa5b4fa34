"""Chaos fixtures: each test gets its own Redis process (it will be hurt) and, where needed,
a fault proxy between the sidecar and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from sidecar.verify.proxy import FaultProxy
from tests.support.redis_server import RedisProcess

pytestmark = pytest.mark.xdist_group("chaos")


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisProcess]]:
    started: list[RedisProcess] = []

    def make(*args: str) -> RedisProcess:
        server = RedisProcess(*args).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


@pytest.fixture
def own_redis(redis_factory: Callable[..., RedisProcess]) -> RedisProcess:
    return redis_factory()


@pytest.fixture
async def proxy(own_redis: RedisProcess) -> AsyncIterator[FaultProxy]:
    fault_proxy = await FaultProxy("127.0.0.1", own_redis.port).start()
    yield fault_proxy
    await fault_proxy.close()
