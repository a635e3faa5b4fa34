"""A private NATS server with JetStream on loopback, for the pipeline test.

The binary is built from its Go module (github.com/nats-io/nats-server/v2) into .tools/nats/bin by
scripts/deps.d/66-nats.sh. Its store directory lives under a temporary directory; it is stopped by
its own PID. No container, no mock.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.processes import terminate
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
NATS_SERVER = Path(os.environ.get("DEDUP_TEST_NATS_SERVER", ROOT / ".tools/nats/bin/nats-server"))


def available() -> bool:
    return NATS_SERVER.exists()


class NatsProcess:
    """`nats-server -js -a 127.0.0.1 -p PORT -sd STOREDIR`."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dedup-nats-"))
        self.port = free_port()
        self.server: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30) -> NatsProcess:
        with open(self.dir / "server.log", "ab") as log:
            self.server = subprocess.Popen(
                [str(NATS_SERVER), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.dir / "store")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.server.returncode}:\n{self.log()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    if conn.recv(4).startswith(b"INFO"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nats-server did not start within {timeout_s}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        terminate(self.server)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
