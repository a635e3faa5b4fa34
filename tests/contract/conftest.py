"""The contract-suite harness: one real Redis and one real sidecar subprocess per test session.

Every language's runner gets the same three targets (tests/contract/scenarios.yaml):
  DEDUP_TARGET              host:port of a live sidecar (policies.yaml loaded)
  DEDUP_BLACKHOLE_TARGET    host:port that accepts TCP and never answers
  DEDUP_UNAVAILABLE_TARGET  host:port where nothing listens
  DEDUP_UNIX_TARGET         unix:/path of the same sidecar's Unix socket (for clients' socket tests)
Runners in other languages are child processes: use `contract_env` for their environment.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.redis_server import RedisProcess, free_port
from tests.support.sidecar_process import SidecarProcess

CONTRACT_DIR = Path(__file__).resolve().parent
REPO = CONTRACT_DIR.parent.parent
SCENARIOS = CONTRACT_DIR / "scenarios.yaml"
POLICIES = CONTRACT_DIR / "policies.yaml"


class Blackhole:
    """A TCP listener that accepts connections and never sends a byte."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.target = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name="blackhole", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            self._held.append(conn)

    def close(self) -> None:
        self._sock.close()
        for conn in self._held:
            conn.close()


@dataclass(frozen=True)
class Harness:
    target: str
    blackhole_target: str
    unavailable_target: str
    unix_target: str
    sidecar: SidecarProcess

    def env(self) -> dict[str, str]:
        return {
            "DEDUP_TARGET": self.target,
            "DEDUP_BLACKHOLE_TARGET": self.blackhole_target,
            "DEDUP_UNAVAILABLE_TARGET": self.unavailable_target,
            "DEDUP_UNIX_TARGET": self.unix_target,
            "DEDUP_CONTRACT_SCENARIOS": str(SCENARIOS),
        }

    def target_for(self, kind: str) -> str:
        return {"sidecar": self.target, "blackhole": self.blackhole_target, "unavailable": self.unavailable_target}[
            kind
        ]


@pytest.fixture(scope="session")
def contract_harness() -> Iterator[Harness]:
    redis = RedisProcess().start()
    socket_dir = tempfile.TemporaryDirectory(prefix="dedup-contract-")
    socket_path = f"{socket_dir.name}/dedup.sock"
    args = ["--redis-url", redis.url, "--policies", str(POLICIES), "--unix-socket", socket_path]
    sidecar = SidecarProcess(args, cwd=str(REPO))
    blackhole = Blackhole()
    try:
        sidecar.start()
        yield Harness(sidecar.target, blackhole.target, f"127.0.0.1:{free_port()}", f"unix:{socket_path}", sidecar)
    finally:
        sidecar.stop()
        blackhole.close()
        redis.close()
        socket_dir.cleanup()


@pytest.fixture(scope="session")
def contract_env(contract_harness: Harness) -> dict[str, str]:
    """os.environ plus the harness variables, for child processes (go test, xlang.sh ...)."""
    return {**os.environ, **contract_harness.env()}
