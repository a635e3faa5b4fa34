"""A private PostgreSQL cluster (Debian's postgresql) on a free loopback port, for the pipeline test.

initdb refuses to run as root, so when the test runs as root the cluster is created
and run as the `postgres` user (runuser); its data lives under a temporary directory.
Authentication is `trust` on loopback only: the cluster is private to the test.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.redis_server import free_port


def bin_dir() -> Path | None:
    explicit = os.environ.get("DEDUP_TEST_PG_BIN", "")
    if explicit:
        return Path(explicit)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def available() -> bool:
    return bin_dir() is not None


class PostgresProcess:
    """initdb + pg_ctl start on 127.0.0.1:port; the socket in the temp directory."""

    def __init__(self, database: str = "pipeline") -> None:
        self.bin = bin_dir()
        if self.bin is None:
            raise RuntimeError("PostgreSQL binaries not found (apt-get install postgresql)")
        self.dir = Path(tempfile.mkdtemp(prefix="dedup-postgres-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.database = database
        self.run_as = "postgres" if os.getuid() == 0 else None
        if self.run_as is not None:
            entry = pwd.getpwnam(self.run_as)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self.user = "postgres"

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=self.dir)

    def start(self, timeout_s: float = 60) -> PostgresProcess:
        done = self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr[-2000:]}")
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200 -c synchronous_commit=off"
        )
        done = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.dir / "server.log"), "-o", options, "-w",
            "-t", str(int(timeout_s)), "start",
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr[-2000:]}\n{self.log()[-2000:]}")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            created = self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database)
            if created.returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"createdb failed: {self.log()[-2000:]}")

    def log(self) -> str:
        path = self.dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
