"""Real Redis topologies for the scale tests: replica pairs, sentinels, a 3x2 cluster."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from tests.support.redis_server import RedisProcess, free_port

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
REDIS_SENTINEL = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"


def wait_for(condition: Callable[[], Any], timeout_s: float = 20.0, what: str = "condition") -> Any:
    """Polls `condition` until it returns something truthy (errors count as not yet)."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except (redis.exceptions.RedisError, OSError) as err:
            last = err
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last error: {last})")


def replication(client: redis.Redis) -> dict[str, Any]:
    return dict(client.info("replication"))


def start_replica(master: RedisProcess, *extra: str) -> RedisProcess:
    replica = RedisProcess("--replicaof", "127.0.0.1", str(master.port), *extra).start()
    wait_for(lambda: acked_by_replicas(master, 1), what=f"replica {replica.port} to sync and acknowledge")
    return replica


def acked_by_replicas(master: RedisProcess, replicas: int) -> bool:
    """A write on the master is acknowledged by `replicas` replicas (the stream to them is live)."""
    client = master.client()
    client.set("dedup-test:probe", "1")
    return int(client.wait(replicas, 500)) >= replicas


class Sentinels:
    """Three redis-sentinel processes watching `name` with short timeouts."""

    def __init__(self, master: RedisProcess, name: str = "dedupmaster", down_after_ms: int = 1000) -> None:
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix="dedup-sentinel-"))
        self.ports = [free_port() for _ in range(3)]
        self.processes: list[subprocess.Popen[bytes]] = []
        for port in self.ports:
            conf = self.dir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {name} 127.0.0.1 {master.port} 2\n"
                f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
                f"sentinel failover-timeout {name} 3000\n"
                f"sentinel parallel-syncs {name} 1\n"
                f"logfile {self.dir / f'sentinel-{port}.log'}\n"
            )
            self.processes.append(
                subprocess.Popen([REDIS_SENTINEL, str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            )
        for port in self.ports:
            wait_for(lambda port=port: self.client(port).ping(), what=f"sentinel {port}")  # type: ignore[misc]

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+sentinel://{hosts}/{self.name}"

    def master_port(self) -> int:
        _host, port = self.client(self.ports[0]).sentinel_get_master_addr_by_name(self.name)
        return int(port)

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Monitor:
    """MONITOR on a server, in a thread, until a command named `until` is seen."""

    def __init__(self, server: RedisProcess, until: str) -> None:
        self.commands: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self._done = threading.Event()
        self._until = until
        self._thread = threading.Thread(target=self._run, args=(server,), daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _run(self, server: RedisProcess) -> None:
        with server.client().monitor() as monitor:
            self._ready.set()
            for command in monitor.listen():
                self.commands.append(command)
                if command["command"].upper().startswith(self._until):
                    self._done.set()
                    return

    def wait(self) -> list[dict[str, Any]]:
        assert self._done.wait(10), "the monitored command never arrived"
        self._thread.join(5)
        return self.commands


def cluster_port(rng: random.Random) -> int:
    """A free port whose cluster bus port (+10000) is free too (so both stay below 65536)."""
    for _ in range(200):
        port = rng.randint(20_000, 45_000)
        if all(_free(p) for p in (port, port + 10_000)):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class ClusterNodeProcess(RedisProcess):
    def __init__(self, port: int, *extra_args: str) -> None:
        super().__init__(*extra_args)
        self.port = port


class LocalCluster:
    """Six cluster-enabled servers made into 3 masters + 3 replicas by `redis-cli --cluster create`."""

    def __init__(self, node_timeout_ms: int = 1000) -> None:
        rng = random.Random()
        self.nodes: list[RedisProcess] = []
        try:
            for _ in range(6):
                node = ClusterNodeProcess(
                    cluster_port(rng),
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(node_timeout_ms),
                )  # fmt: skip
                self.nodes.append(node)
                node.start()
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            subprocess.run(
                [REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=60,
            )
            wait_for(self.healthy, 30, "cluster_state:ok on every node with 3 masters")
        except BaseException:
            self.close()
            raise

    def healthy(self) -> bool:
        for node in self.nodes:
            info = node.client().cluster("info")
            if info.get("cluster_state") != "ok":
                return False
        return len(self.masters()) == 3

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:3])

    def by_port(self, port: int) -> RedisProcess:
        return next(node for node in self.nodes if node.port == port)

    def masters(self) -> list[RedisProcess]:
        return [node for node in self.nodes if replication(node.client()).get("role") == "master"]

    def node_id(self, node: RedisProcess) -> str:
        return str(node.client().execute_command("CLUSTER", "MYID").decode())

    def close(self) -> None:
        for node in self.nodes:
            node.close()
