"""`serve --workers N`: N server processes on one TCP port (SO_REUSEPORT), one supervisor.

The supervisor starts the embedded store once (when no --redis-url is given),
chooses the port once (when --listen ends in :0), and runs N copies of
`python -m sidecar serve` with the same arguments plus DEDUP_WORKER_* variables
that pin the port and the store URL. Each worker binds the port with
SO_REUSEPORT; the kernel spreads new connections over them. SIGTERM/SIGINT to
the supervisor is forwarded to every worker, which drains like a lone server;
if one worker exits on its own, the others are stopped too and the supervisor
exits with that worker's code (let the orchestrator restart the whole unit).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace

from sidecar.embedded import EmbeddedRedis, EmbeddedServerError
from sidecar.settings import Settings

log = logging.getLogger("dedup.workers")

WORKER_INDEX = "DEDUP_WORKER_INDEX"
WORKER_LISTEN = "DEDUP_WORKER_LISTEN"
WORKER_REDIS_URL = "DEDUP_WORKER_REDIS_URL"
EXIT_CONFIG = 2


def is_worker() -> bool:
    return WORKER_INDEX in os.environ


def worker_settings(settings: Settings) -> Settings:
    """A worker's settings: the supervisor's port and store URL win over its arguments."""
    return replace(
        settings,
        listen=os.environ.get(WORKER_LISTEN, settings.listen),
        redis_url=os.environ.get(WORKER_REDIS_URL, settings.redis_url),
    )


def _reserve_port(listen: str) -> tuple[str, socket.socket | None]:
    """host:port with a concrete port; for :0 a bound (not listening) SO_REUSEPORT socket holds it."""
    host, _, port = listen.rpartition(":")
    if port != "0":
        return listen, None
    bind_host = host.strip("[]")
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((bind_host, 0))
    return f"{host}:{holder.getsockname()[1]}", holder


def supervise(settings: Settings, argv: Sequence[str]) -> int:
    """Runs the workers until they all exit; returns the exit code."""
    embedded: EmbeddedRedis | None = None
    url = settings.redis_url
    if not url:
        try:
            embedded = EmbeddedRedis(settings.resolved_data_dir, settings.embedded_server, settings.embedded_fsync)
            embedded.start()
        except EmbeddedServerError as err:
            log.error("cannot start the embedded store: %s", err)
            return EXIT_CONFIG
        url = embedded.url
    listen, holder = _reserve_port(settings.listen)
    stop = threading.Event()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for index in range(settings.workers):
            env = {**os.environ, WORKER_INDEX: str(index), WORKER_LISTEN: listen, WORKER_REDIS_URL: url}
            workers.append(subprocess.Popen([sys.executable, "-m", "sidecar", "serve", *argv], env=env))  # noqa: S603
        log.info("workers started", extra={"listen": listen, "pids": [w.pid for w in workers]})

        def forward(signum: int, _frame: object) -> None:
            stop.set()
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        return _wait(workers, stop, settings.shutdown_grace / 1000)
    finally:
        if holder is not None:
            holder.close()
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        if embedded is not None:
            embedded.stop()
        log.info("workers stopped")


def _wait(workers: list[subprocess.Popen[bytes]], stop: threading.Event, grace_s: float) -> int:
    """The first worker to exit decides the code; the rest get SIGTERM and the grace period."""
    while True:
        for worker in workers:
            code = worker.poll()
            if code is None:
                continue
            if not stop.is_set():
                log.error("worker %d exited with %d; stopping the others", worker.pid, code)
                stop.set()
                for other in workers:
                    if other.poll() is None:
                        other.terminate()
            codes = [other.wait(grace_s + 5) for other in workers]
            return next((c for c in codes if c != 0), 0)
        stop.wait(0.1)
