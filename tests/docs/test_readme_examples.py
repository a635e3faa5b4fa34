"""The README's examples run: its Python snippet and its operator-CLI tour, against a live sidecar process.

Values that change from run to run (times, ages, tokens) are compared by shape: each command must give the
same outcome line, the same fields and the same exit code as the README shows.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.inprocess import unique_prefix
from tests.support.redis_server import RedisProcess
from tests.support.sidecar_process import SidecarProcess

REPO = Path(__file__).resolve().parents[2]
README_TARGET = "127.0.0.1:50051"


def blocks(language: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.DOTALL | re.MULTILINE)


@pytest.fixture
def live(redis_server: RedisProcess) -> Iterator[SidecarProcess]:
    sidecar = SidecarProcess(["--redis-url", redis_server.url, "--key-prefix", unique_prefix()]).start()
    yield sidecar
    sidecar.stop()


def test_the_python_snippet_runs_and_prints_what_its_comments_say(live: SidecarProcess) -> None:
    (snippet,) = [b for b in blocks("python") if "DedupClient(" in b]
    expected = [line.split("  # ", 1)[1] for line in snippet.splitlines() if line.lstrip().startswith("print(")]
    assert expected, "the README's Python snippet should show what it prints"
    run = subprocess.run(
        [sys.executable, "-c", snippet.replace(README_TARGET, live.target)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == expected


def tour() -> list[tuple[str, list[str]]]:
    """(command, README output lines) for every `$ dedup-sidecar ...` in the console blocks."""
    steps: list[tuple[str, list[str]]] = []
    for block in blocks("console"):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
    return [(command, output) for command, output in steps if command.startswith("dedup-sidecar ")]


def shape(lines: list[str]) -> list[str]:
    """Outcome words, field names, JSON keys and exit codes; not the values that change per run."""
    out: list[str] = []
    for line in lines:
        if line.startswith("{"):
            out.append("json:" + ",".join(sorted(json.loads(line))))
        elif ":" in line and line.startswith("  "):
            out.append(line.split(":", 1)[0])
        else:
            out.append(line)
    return out


def test_the_operator_tour_gives_the_readme_outcomes(live: SidecarProcess) -> None:
    steps = tour()
    assert len(steps) >= 5, "the README's tour lost its commands"
    env = {**os.environ, "DEDUP_TARGET": live.target, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    token = ""
    for command, readme_output in steps:
        if "--token" in command:
            command = re.sub(r"--token \d+", f"--token {token}", command)
        run = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, timeout=60)
        got = run.stdout.splitlines()
        assert shape(got) == shape(readme_output), f"$ {command}\n{run.stdout}{run.stderr}"
        if got and got[0].startswith("{") and "fencing_token" in got[0]:
            token = json.loads(got[0])["fencing_token"]
