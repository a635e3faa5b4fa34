"""The sidecar as a real subprocess (`python -m sidecar serve`), for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any


class SidecarProcess:
    """Starts the sidecar, waits for its `serving` log line, and collects its logs."""

    def __init__(self, args: Sequence[str] = (), env: Mapping[str, str] | None = None, cwd: str | None = None) -> None:
        self.args = ["--listen", "127.0.0.1:0", *args]
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.process: subprocess.Popen[str] | None = None
        self.logs: list[dict[str, Any]] = []
        self.raw_lines: list[str] = []
        self.target = ""
        self._serving = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, timeout_s: float = 30.0, wait_serving: bool = True) -> SidecarProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "serve", *self.args],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if wait_serving and not self._serving.wait(timeout_s):
            self.stop()
            raise RuntimeError("sidecar did not start serving:\n" + "\n".join(self.raw_lines[-30:]))
        return self

    def _read(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.raw_lines.append(line.rstrip())
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            self.logs.append(entry)
            if entry.get("msg") == "serving":
                self.target = entry.get("listen") or f"unix:{entry.get('unix_socket')}"
                self._serving.set()

    def wait_exit(self, timeout_s: float = 30.0) -> int:
        assert self.process is not None
        code = self.process.wait(timeout_s)
        if self._reader is not None:
            self._reader.join(5)
        return code

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.signal(signal.SIGTERM)
        try:
            return self.wait_exit(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.wait_exit(timeout_s)

    def log_messages(self) -> list[str]:
        return [str(entry.get("msg")) for entry in self.logs]

    def wait_log(self, predicate: Any, timeout_s: float = 20.0) -> dict[str, Any]:
        """The first log entry matching `predicate`, waiting for it (bounded)."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            for entry in self.logs[seen:]:
                if predicate(entry):
                    return entry
            seen = len(self.logs)
            time.sleep(0.02)
        raise AssertionError("log line not seen:\n" + "\n".join(self.raw_lines[-30:]))
