"""The processes a benchmark runs: a Redis server, the servers under test, and their CPU and memory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Watched:
    """A process (and its children) whose CPU time and peak RSS we report."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)

    def _family(self) -> list[psutil.Process]:
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_s(self) -> float:
        total = 0.0
        for p in self._family():
            try:
                times = p.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def peak_rss_mb(self) -> float:
        """Sum over the process family of VmHWM (peak resident set)."""
        total = 0
        for p in self._family():
            try:
                for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
            except (OSError, psutil.NoSuchProcess):
                pass
        return total / 1024


class RedisServer:
    def __init__(self, binary: str = "") -> None:
        self.binary = binary or shutil.which("redis-server") or "redis-server"
        self.dir = Path(tempfile.mkdtemp(prefix="dedup-bench-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        return f"unix://{self.dir / 'redis.sock'}"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=60)

    def start(self) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction",
                "--logfile", str(self.dir / "log"), "--unixsocket", str(self.dir / "redis.sock")]  # fmt: skip
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        wait_for(lambda: _pings(self.client()), 15, f"{self.binary} did not start")
        return self

    def version(self) -> str:
        return str(self.client().info("server").get("redis_version"))

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def wait_for(condition: object, timeout_s: float, message: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise RuntimeError(message)


class GrpcServer:
    """A server under test as a subprocess: the no-op baseline or `dedup-sidecar serve`."""

    def __init__(self, kind: str, redis_url: str = "", extra: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.log = Path(tempfile.mkstemp(prefix=f"dedup-bench-{kind}-", suffix=".log")[1])
        if kind == "noop":
            self.args = [sys.executable, "-m", "bench.noop_server", "--listen", self.target]
        else:
            self.args = [sys.executable, "-m", "sidecar", "serve", "--listen", self.target, "--redis-url", redis_url,
                         "--log-level", "warning", *extra]  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> GrpcServer:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_for(self._answers, 30, f"{self.kind} did not start: {self.log.read_text()[-2000:]}")
        self.watched = Watched(self.process.pid)
        return self

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.kind} exited: {self.log.read_text()[-2000:]}")
        import grpc

        from dedup.v1 import dedup_pb2 as pb
        from dedup.v1 import dedup_pb2_grpc

        with grpc.insecure_channel(self.target) as channel:
            try:
                dedup_pb2_grpc.DedupStub(channel).Check(pb.CheckRequest(namespace="bench", id=b"warmup"), timeout=1)
            except grpc.RpcError:
                return False
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.unlink(missing_ok=True)
