"""A Redis password never reaches the sidecar's log or check-store's report, whatever form it takes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.inprocess import unique_prefix
from tests.support.redis_server import RedisProcess
from tests.support.sidecar_process import SidecarProcess

PASSWORD = "pw-7f3a91c2e5"


@pytest.fixture
def locked_redis() -> Iterator[RedisProcess]:
    server = RedisProcess().start()
    server.client().config_set("requirepass", PASSWORD)
    yield server
    server.close()


def urls(port: int) -> list[str]:
    return [
        f"redis://:{PASSWORD}@127.0.0.1:{port}/0",
        f"redis://default:{PASSWORD}@127.0.0.1:{port}/0",
        f"redis://127.0.0.1:{port}/0?password={PASSWORD}",
    ]


@pytest.mark.parametrize("form", [0, 1, 2])
def test_the_store_line_and_the_whole_log_hide_the_password(locked_redis: RedisProcess, form: int) -> None:
    url = urls(locked_redis.port)[form]
    sidecar = SidecarProcess(["--redis-url", url, "--key-prefix", unique_prefix(), "--log-level", "debug"]).start()
    try:
        store_line = next(line for line in sidecar.raw_lines if '"store: ' in line)
        assert "***" in store_line
    finally:
        sidecar.stop()
    assert not [line for line in sidecar.raw_lines if PASSWORD in line]


def test_check_store_hides_the_password(locked_redis: RedisProcess) -> None:
    for url in urls(locked_redis.port):
        report = subprocess.run(
            [sys.executable, "-m", "sidecar", "check-store", "--redis-url", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert report.returncode == 0, report.stdout + report.stderr
        assert PASSWORD not in report.stdout + report.stderr
        assert "***" in report.stdout


def test_a_wrong_url_is_reported_without_its_password() -> None:
    url = f"redis+cluster://:{PASSWORD}@127.0.0.1:1/5"  # Cluster has no db 5: a startup error
    sidecar = SidecarProcess(["--redis-url", url]).start(wait_serving=False)
    assert sidecar.wait_exit(30) != 0
    assert not [line for line in sidecar.raw_lines if PASSWORD in line]
