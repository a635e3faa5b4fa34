"""The contract-suite harness: one real Redis and one real sidecar subprocess per test session.

Every language's runner gets the same three targets (tests/contract/scenarios.yaml):
  DEDUP_TARGET              host:port of a live sidecar (policies.yaml loaded)
  DEDUP_BLACKHOLE_TARGET    host:port that accepts TCP and never answers
  DEDUP_UNAVAILABLE_TARGET  host:port where nothing listens
  DEDUP_UNIX_TARGET         unix:/path of the same sidecar's Unix socket (for clients' socket tests)
  DEDUP_TOGGLE_TARGET       host:port of a TCP proxy to the same sidecar that a runner can cut
  DEDUP_TOGGLE_CONTROL      host:port of that proxy's control socket: send "cut <ms>\n", read "ok\n";
                            the proxy then resets every open connection and refuses new ones for
                            <ms> milliseconds (an outage a runner starts from inside a handler)
Runners in other languages are child processes: use `contract_env` for their environment.
"""

from __future__ import annotations

import os
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
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


class ToggleProxy:
    """A TCP proxy to `upstream` whose control socket cuts it for a while (see the module docstring).

    A cut resets every proxied connection (SO_LINGER 0: the client sees a reset, as when a sidecar
    dies) and, until it ends, resets each new connection as soon as it is accepted.
    """

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._lock = threading.Lock()
        self._cut_until = 0.0
        self._conns: list[socket.socket] = []
        self._listener = self._listen(self._proxy_accept)
        self._control = self._listen(self._control_accept)
        self.target = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self.control = f"127.0.0.1:{self._control.getsockname()[1]}"

    @staticmethod
    def _listen(accept: Callable[[socket.socket], None]) -> socket.socket:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        threading.Thread(target=accept, args=(sock,), name="toggle-accept", daemon=True).start()
        return sock

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        except OSError:
            pass

    def _proxy_accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed
                return
            with self._lock:
                cut = time.monotonic() < self._cut_until
            if cut:
                self._reset(client)
                continue
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                self._reset(client)
                continue
            with self._lock:
                self._conns += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), name="toggle-pump", daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        self._reset(src)
        self._reset(dst)

    def _control_accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed
                return
            with conn, conn.makefile("rw") as stream:
                for line in stream:
                    verb, _, arg = line.strip().partition(" ")
                    if verb == "cut" and arg.isdigit():
                        self.cut(int(arg))
                        stream.write("ok\n")
                    else:
                        stream.write(f"error: unknown command {line.strip()!r}\n")
                    stream.flush()

    def cut(self, ms: int) -> None:
        with self._lock:
            self._cut_until = time.monotonic() + ms / 1000
            conns, self._conns = self._conns, []
        for conn in conns:
            self._reset(conn)

    def close(self) -> None:
        self._listener.close()
        self._control.close()
        self.cut(0)


@dataclass(frozen=True)
class Harness:
    target: str
    blackhole_target: str
    unavailable_target: str
    unix_target: str
    toggle_target: str
    toggle_control: str
    sidecar: SidecarProcess

    def env(self) -> dict[str, str]:
        return {
            "DEDUP_TARGET": self.target,
            "DEDUP_BLACKHOLE_TARGET": self.blackhole_target,
            "DEDUP_UNAVAILABLE_TARGET": self.unavailable_target,
            "DEDUP_UNIX_TARGET": self.unix_target,
            "DEDUP_TOGGLE_TARGET": self.toggle_target,
            "DEDUP_TOGGLE_CONTROL": self.toggle_control,
            "DEDUP_CONTRACT_SCENARIOS": str(SCENARIOS),
        }

    def target_for(self, kind: str) -> str:
        return {
            "sidecar": self.target,
            "blackhole": self.blackhole_target,
            "unavailable": self.unavailable_target,
            "toggle": self.toggle_target,
        }[kind]


@pytest.fixture(scope="session")
def contract_harness() -> Iterator[Harness]:
    redis = RedisProcess().start()
    socket_dir = tempfile.TemporaryDirectory(prefix="dedup-contract-")
    socket_path = f"{socket_dir.name}/dedup.sock"
    args = ["--redis-url", redis.url, "--policies", str(POLICIES), "--unix-socket", socket_path]
    sidecar = SidecarProcess(args, cwd=str(REPO))
    blackhole = Blackhole()
    toggle: ToggleProxy | None = None
    try:
        sidecar.start()
        toggle = ToggleProxy(sidecar.target)
        yield Harness(
            sidecar.target,
            blackhole.target,
            f"127.0.0.1:{free_port()}",
            f"unix:{socket_path}",
            toggle.target,
            toggle.control,
            sidecar,
        )
    finally:
        if toggle is not None:
            toggle.close()
        sidecar.stop()
        blackhole.close()
        redis.close()
        socket_dir.cleanup()


@pytest.fixture(scope="session")
def contract_env(contract_harness: Harness) -> dict[str, str]:
    """os.environ plus the harness variables, for child processes (go test, xlang.sh ...)."""
    return {**os.environ, **contract_harness.env()}
