"""`verify --local`: a private Redis, a fault proxy and a sidecar process on this machine,
so the nemesis can kill, pause and restart each of them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.embedded import find_server_binary
from sidecar.verify.proxy import FaultProxy

PERSISTENCE_ARGS = {
    "always": ("--appendonly", "yes", "--appendfsync", "always"),
    "everysec": ("--appendonly", "yes", "--appendfsync", "everysec"),
    "off": ("--appendonly", "no"),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout_s: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class LocalRedis:
    def __init__(self, directory: Path, persistence: str = "always") -> None:
        self.binary = find_server_binary()
        self.dir = directory
        self.port = free_port()
        self.persistence = persistence
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--save", "", "--maxmemory-policy", "noeviction", "--daemonize", "no",
            "--logfile", str(self.dir / "redis.log"), *PERSISTENCE_ARGS[self.persistence],
        ]  # fmt: skip
        self.process = subprocess.Popen(  # noqa: S603 - fixed argument list
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"redis did not start: {(self.dir / 'redis.log').read_text()[-1000:]}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        self.resume()
        _stop(self.process)


class LocalSidecar:
    def __init__(self, redis_url: str, namespace_policies: Path, extra: tuple[str, ...] = ()) -> None:
        self.log_path = namespace_policies.parent / "sidecar.log"
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.args = [
            sys.executable, "-m", "sidecar", "serve", "--listen", self.target, "--redis-url", redis_url,
            "--policies", str(namespace_policies), "--log-level", "warning", "--shutdown-grace", "5s", *extra,
        ]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        with open(self.log_path, "ab") as log:
            return subprocess.Popen(  # noqa: S603 - fixed argument list
                self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
            )

    async def start(self) -> None:
        self.process = await asyncio.to_thread(self._spawn)
        deadline = time.monotonic() + 30
        async with grpc.aio.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"sidecar exited with {self.process.returncode}")
                with contextlib.suppress(grpc.RpcError):
                    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError("sidecar did not become ready in 30s")

    async def restart(self, sig: int) -> None:
        await asyncio.to_thread(_stop, self.process, sig)
        await self.start()

    def stop(self) -> None:
        _stop(self.process)


class LocalDeployment:
    """Redis <- fault proxy <- sidecar, all on loopback, in a temporary directory."""

    def __init__(self, persistence: str = "always", lease_ms: int = 10_000) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dedup-verify-"))
        self.redis = LocalRedis(self.dir, persistence)
        self.policies = self.dir / "policies.yaml"
        self.policies.write_text(f"namespaces:\n  default:\n    lease: {lease_ms}ms\n    max_lease: 1h\n")
        self.proxy: FaultProxy | None = None
        self.sidecar: LocalSidecar | None = None

    async def start(self) -> str:
        await asyncio.to_thread(self.redis.start)
        self.proxy = await FaultProxy("127.0.0.1", self.redis.port).start()
        self.sidecar = LocalSidecar(self.proxy.url, self.policies, ("--store-timeout", "1s"))
        await self.sidecar.start()
        return self.sidecar.target

    async def close(self) -> None:
        if self.sidecar is not None:
            await asyncio.to_thread(self.sidecar.stop)
        if self.proxy is not None:
            await self.proxy.close()
        await asyncio.to_thread(self.redis.stop)
        shutil.rmtree(self.dir, ignore_errors=True)
