from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scale.servers import LocalCluster, Sentinels, start_replica
from tests.support.redis_server import RedisProcess


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """One 3-master/3-replica cluster per test process (tests leave it healthy, possibly resharded)."""
    local = LocalCluster()
    yield local
    local.close()


@pytest.fixture
def topology() -> Iterator[tuple[RedisProcess, RedisProcess, Sentinels]]:
    """A master, its replica and three sentinels watching it (new for each test: failovers change it)."""
    master = RedisProcess().start()
    replica = start_replica(master)
    sentinels = Sentinels(master)
    yield master, replica, sentinels
    sentinels.close()
    replica.close()
    master.close()
