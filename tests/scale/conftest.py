from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scale.servers import LocalCluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    """One 3-master/3-replica cluster per test process (tests leave it healthy, possibly resharded)."""
    local = LocalCluster()
    yield local
    local.close()
