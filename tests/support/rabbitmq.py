"""A private RabbitMQ node (Debian's rabbitmq-server) on loopback, for the pipeline test.

Its own epmd on a free port, its own Erlang cookie (HOME), mnesia and log
directories under a temporary directory; stopped by its own PIDs. Never the
system service, never a port on another interface.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.redis_server import free_port

RABBITMQ_BIN = Path(os.environ.get("DEDUP_TEST_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))


def available() -> bool:
    return (RABBITMQ_BIN / "rabbitmq-server").exists() and shutil.which("epmd") is not None


class RabbitMQProcess:
    """epmd + one rabbitmq-server node, both bound to 127.0.0.1."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dedup-rabbitmq-"))
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"dedup{self.port}@localhost"
        self.epmd: subprocess.Popen[bytes] | None = None
        self.server: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def _env(self) -> dict[str, str]:
        home = self.dir / "home"
        home.mkdir(exist_ok=True)
        conf_env = self.dir / "rabbitmq-env.conf"
        conf_env.touch()
        plugins = self.dir / "enabled_plugins"
        plugins.write_text("[].\n")
        config = self.dir / "rabbitmq.conf"
        # guest may log in over loopback only (the default); no disk alarm on a busy CI disk.
        config.write_text("loopback_users.guest = true\ndisk_free_limit.absolute = 50MB\n")
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "RABBITMQ_CONF_ENV_FILE": str(conf_env),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_CONFIG_FILE": str(config.with_suffix("")),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def ctl(self, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.node, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def start(self, timeout_s: float = 60) -> RabbitMQProcess:
        env = self._env()
        self.epmd = subprocess.Popen(
            ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        log = open(self.dir / "server.out", "wb")  # noqa: SIM115 - lives as long as the process
        self.server = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=env,
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError("rabbitmq-server exited:\n" + self.output()[-3000:])
            waited = self.ctl("wait", "--timeout", "5", str(self.dir / "rabbitmq.pid"), timeout_s=20)
            if waited.returncode == 0:
                return self
        self.stop()
        raise RuntimeError("rabbitmq-server did not start in time:\n" + self.output()[-3000:])

    def output(self) -> str:
        path = self.dir / "server.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def queue_depth(self, queue: str) -> tuple[int, int]:
        """(ready, unacknowledged) of `queue`, from rabbitmqctl."""
        listed = self.ctl("list_queues", "-q", "name", "messages_ready", "messages_unacknowledged", timeout_s=30)
        for line in listed.stdout.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == queue:
                return int(parts[1]), int(parts[2])
        return 0, 0

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.ctl("stop", str(self.dir / "rabbitmq.pid"), timeout_s=60)
            try:
                self.server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
                self.server.wait()
        self.server = None
        if self.epmd is not None and self.epmd.poll() is None:
            self.epmd.terminate()
            self.epmd.wait(10)
        self.epmd = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
