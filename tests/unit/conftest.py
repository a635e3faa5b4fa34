"""The unit tier is hermetic: no child processes (git, node_modules binaries, servers).

Tests that need a toolchain or the repository's history live in tests/tooling/, tests that need
a server in tests/integration/ and beyond.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest


class ChildProcessInUnitTest(AssertionError):
    pass


@pytest.fixture(autouse=True)
def _no_child_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        command = args[1] if len(args) > 1 else kwargs.get("args")
        raise ChildProcessInUnitTest(f"unit tests are hermetic: no child process ({command})")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
