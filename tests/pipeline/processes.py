"""The pipeline's moving parts: Redis (AOF), the sidecar on a fixed port, and supervised consumers.

Consumers are the shipped examples (clients/python/examples/rabbitmq/consumer.py and
clients/go/examples/rabbitmq), started the way their README says. A supervisor thread
restarts a consumer that died (SIGKILL by the chaos driver), as a process manager would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from tests.support.postgres import PostgresProcess
from tests.support.redis_server import RedisProcess, free_port
from tests.support.sidecar_process import SidecarProcess

ROOT = Path(__file__).resolve().parents[2]
PY_EXAMPLE = ROOT / "clients/python/examples/rabbitmq"
GO_EXAMPLE = ROOT / "clients/go/examples/rabbitmq"


def build_go_consumer(out: Path) -> Path:
    """`go build` of the Go example, as its README says (its own module, `replace` to the client)."""
    binary = out / "rabbitmq-consumer"
    done = subprocess.run(
        ["go", "build", "-o", str(binary), "."], cwd=GO_EXAMPLE, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"go build of {GO_EXAMPLE} failed:\n{done.stderr[-3000:]}")
    return binary


def start_redis(directory: Path) -> RedisProcess:
    """AOF on, fsync always: a Redis restart keeps every record."""
    directory.mkdir(parents=True, exist_ok=True)
    return RedisProcess("--appendonly", "yes", "--appendfsync", "always", data_dir=directory).start()


class Sidecar:
    """The sidecar on one fixed loopback port, so consumers reconnect to it after a restart."""

    def __init__(self, redis_url: str, policies: Path) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.args = [
            "--listen", self.target, "--redis-url", redis_url, "--policies", str(policies),
            "--store-timeout", "1s", "--shutdown-grace", "2s",
        ]  # fmt: skip
        self.process: SidecarProcess | None = None

    def start(self) -> None:
        deadline = time.monotonic() + 60
        while True:  # the port may still be held for a moment after a SIGKILL
            try:
                self.process = SidecarProcess(self.args).start(timeout_s=30)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def restart(self, signum: int) -> None:
        assert self.process is not None
        self.process.signal(signum)
        self.process.wait_exit(60)
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@dataclass
class Slot:
    """One consumer position; each (re)start is a new incarnation with its own name."""

    slot: str
    command: list[str]
    events: Path
    log: Path
    incarnation: int = 0
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False
    names: dict[int, str] = field(default_factory=dict)  # pid -> name

    @property
    def name(self) -> str:
        return f"{self.slot}.{self.incarnation}"

    def start(self) -> None:
        self.incarnation += 1
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [*self.command, "--name", self.name, "--events", str(self.events)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        self.names[self.process.pid] = self.name

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> int:
        assert self.process is not None
        os.kill(self.process.pid, signum)
        return self.process.pid

    def stop(self) -> None:
        if self.process is None:
            return
        if self.paused:
            os.kill(self.process.pid, signal.SIGCONT)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Consumers:
    """The consumer slots plus the supervisor that restarts dead ones."""

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots
        self.restarts = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="consumer-supervisor", daemon=True)

    def start(self) -> None:
        for slot in self.slots:
            slot.start()
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stop.wait(0.2):
            with self._lock:
                for slot in self.slots:
                    if not slot.alive():
                        slot.start()
                        self.restarts += 1

    def locked(self) -> threading.Lock:
        return self._lock

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for slot in self.slots:
            slot.stop()


def python_command(amqp_url: str, target: str, dsn: str, namespace: str) -> list[str]:
    return [
        sys.executable, str(PY_EXAMPLE / "consumer.py"), "--amqp-url", amqp_url, "--target", target,
        "--pg-dsn", dsn, "--namespace", namespace,
    ]  # fmt: skip


def go_command(binary: Path, amqp_url: str, target: str, dsn: str, namespace: str) -> list[str]:
    return [
        str(binary), "-amqp-url", amqp_url.replace("%2F", ""), "-target", target, "-pg-dsn", dsn,
        "-namespace", namespace,
    ]  # fmt: skip


class Broker(Protocol):
    def start(self) -> object: ...
    def close(self) -> None: ...


B = TypeVar("B", bound=Broker)


@contextlib.contextmanager
def with_postgres(broker: B) -> Iterator[tuple[B, PostgresProcess]]:
    """A private PostgreSQL and `broker`, started for a test module and stopped after it."""
    pg = PostgresProcess().start()
    try:
        broker.start()
        yield broker, pg
    finally:
        broker.close()
        pg.close()
