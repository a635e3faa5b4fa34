"""A private single-node Kafka broker (KRaft, broker + controller in one process) on loopback.

The jars come from Maven Central (org.apache.kafka:kafka_2.13, copied into .tools/kafka/libs by
scripts/deps.d/65-kafka.sh) and run on the machine's java. Its log directory lives under a
temporary directory; it is stopped by its own PID. No container, no mock.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.processes import terminate
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
LIBS = Path(os.environ.get("DEDUP_TEST_KAFKA_LIBS", ROOT / ".tools/kafka/libs"))

LOG4J2 = """\
Configuration:
  status: warn
  Appenders:
    File:
      name: file
      fileName: "{log}"
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: info
      AppenderRef:
        - ref: file
"""


def available() -> bool:
    return shutil.which("java") is not None and any(LIBS.glob("kafka_2.13-*.jar"))


class KafkaProcess:
    """`kafka.Kafka server.properties` with process.roles=broker,controller, bound to 127.0.0.1."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dedup-kafka-"))
        self.port = free_port()
        self.controller_port = free_port()
        self.server: subprocess.Popen[bytes] | None = None
        self.properties = self.dir / "server.properties"
        self.log_file = self.dir / "server.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self, main: str, *args: str, timeout_s: float | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["java", "-Xms64m", "-Xmx256m", "-cp", f"{LIBS}/*", main, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )

    def _write_config(self) -> None:
        one = "1"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "4",
            "offsets.topic.replication.factor": one,
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": one,
            "transaction.state.log.min.isr": one,
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": one,
            "share.coordinator.state.topic.min.isr": one,
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
        }
        self.properties.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        (self.dir / "log4j2.yaml").write_text(LOG4J2.format(log=self.log_file))

    def start(self, timeout_s: float = 90) -> KafkaProcess:
        self._write_config()
        cluster_id = self._java("kafka.tools.StorageTool", "random-uuid", timeout_s=60).stdout.strip().splitlines()[-1]
        self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.properties), timeout_s=90)
        command = [
            "java", "-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.yaml'}",
            "-cp", f"{LIBS}/*", "kafka.Kafka", str(self.properties),
        ]  # fmt: skip
        with open(self.dir / "stdout.log", "ab") as out:
            self.server = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"kafka exited with {self.server.returncode}:\n{self.log()[-4000:]}")
            if self.log_file.exists() and "Kafka Server started" in self.log_file.read_text(errors="replace"):
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"kafka did not start within {timeout_s}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.dir / "stdout.log", self.log_file) if p.exists()]
        return "\n".join(parts)

    def stop(self) -> None:
        terminate(self.server)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
