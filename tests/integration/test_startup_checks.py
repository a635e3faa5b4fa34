"""docs/contract.md §6 startup checks, with the sidecar and `check-store` as real processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisProcess
from tests.support.sidecar_process import SidecarProcess


@pytest.fixture
def lru_redis() -> Iterator[RedisProcess]:
    server = RedisProcess("--maxmemory-policy", "allkeys-lru").start()
    yield server
    server.close()


def check_store(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "check-store", *args], capture_output=True, text=True, timeout=60
    )


def test_sidecar_refuses_to_start_on_an_evicting_redis(lru_redis: RedisProcess) -> None:
    sidecar = SidecarProcess(["--redis-url", lru_redis.url]).start(wait_serving=False)
    assert sidecar.wait_exit(30) == 3
    refusal = next(entry for entry in sidecar.logs if "refusing to start" in str(entry.get("msg")))
    assert "allkeys-lru" in refusal["msg"]
    assert "CONFIG SET maxmemory-policy noeviction" in refusal["msg"]


def test_allow_unsafe_store_serves_loudly(lru_redis: RedisProcess) -> None:
    sidecar = SidecarProcess(["--redis-url", lru_redis.url, "--allow-unsafe-store"]).start()
    try:
        assert any("UNSAFE STORE" in message for message in sidecar.log_messages())
    finally:
        assert sidecar.stop() == 0


def test_check_store_reports_and_exits_by_verdict(redis_server: RedisProcess, lru_redis: RedisProcess) -> None:
    safe = check_store("--redis-url", redis_server.url)
    assert safe.returncode == 0, safe.stdout + safe.stderr
    assert "maxmemory-policy: noeviction" in safe.stdout
    assert "verdict: safe" in safe.stdout

    unsafe = check_store("--redis-url", lru_redis.url)
    assert unsafe.returncode == 1
    assert "UNSAFE: maxmemory-policy is allkeys-lru" in unsafe.stdout

    unreachable = check_store("--redis-url", "redis://127.0.0.1:1/0", "--store-timeout", "1s")
    assert unreachable.returncode == 2
    assert "unreachable" in unreachable.stdout


def test_the_checks_need_no_config_permission(redis_server: RedisProcess) -> None:
    """CONFIG GET can read requirepass: the checks read INFO instead."""
    redis_server.client().execute_command("ACL", "SETUSER", "noconfig", "on", ">secret", "~*", "&*", "+@all", "-config")
    result = check_store("--redis-url", f"redis://noconfig:secret@127.0.0.1:{redis_server.port}/0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "maxmemory-policy: noeviction" in result.stdout
    assert "verdict: safe" in result.stdout
    assert "cannot verify" not in result.stdout
    assert "secret" not in result.stdout


def test_check_store_says_cannot_verify_when_info_is_forbidden(redis_server: RedisProcess) -> None:
    redis_server.client().execute_command("ACL", "SETUSER", "noinfo", "on", ">secret", "~*", "&*", "+@all", "-info")
    result = check_store("--redis-url", f"redis://noinfo:secret@127.0.0.1:{redis_server.port}/0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cannot verify" in result.stdout
    assert "secret" not in result.stdout
