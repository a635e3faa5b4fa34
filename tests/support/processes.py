"""Stopping a server process the tests started: SIGTERM, a bounded wait, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess


def terminate(process: subprocess.Popen[bytes] | subprocess.Popen[str] | None, timeout_s: float = 30) -> None:
    """Stops `process` (if it still runs): SIGTERM, wait up to `timeout_s`, then SIGKILL."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
