"""The Go and Node clients' READMEs, followed from outside the repository: a temporary Go module
that depends on the client through `replace`, and a temporary npm project that installs the packed
client, each running its README's example against a live sidecar and printing what it says.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.inprocess import unique_prefix
from tests.support.redis_server import RedisProcess
from tests.support.sidecar_process import SidecarProcess

REPO = Path(__file__).resolve().parents[2]
README_TARGET = "127.0.0.1:50051"
GO_MODULE = "github.com/dedup-sidecar/dedup/clients/go"


def block(readme: Path, language: str, containing: str) -> str:
    found = re.findall(rf"^```{language}\n(.*?)^```$", readme.read_text(), re.DOTALL | re.MULTILINE)
    (snippet,) = [b for b in found if containing in b]
    return snippet


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"
    return done.stdout


@pytest.fixture
def live(redis_server: RedisProcess) -> Iterator[SidecarProcess]:
    sidecar = SidecarProcess(["--redis-url", redis_server.url, "--key-prefix", unique_prefix()]).start()
    yield sidecar
    sidecar.stop()


def test_the_go_readme_from_a_module_outside_the_repository(live: SidecarProcess, tmp_path: Path) -> None:
    readme = REPO / "clients" / "go" / "README.md"
    setup = block(readme, "sh", "go mod edit -replace")
    module = tmp_path / "consumer"
    module.mkdir()
    for line in setup.splitlines():
        if line.startswith("go "):
            command = line.replace("/path/to/dedup", str(REPO)).split()
            run(command, module, {**os.environ, "GOFLAGS": "-mod=mod"})
    example = block(readme, "go", "func main()")
    (module / "main.go").write_text(example.replace(README_TARGET, live.target))
    run(["go", "mod", "tidy"], module)
    lines = run(["go", "run", "."], module).splitlines()
    assert lines[:2] == ["NEW", "DUPLICATE"], lines
    assert re.fullmatch(r"PROCESSED ACK receipt-\d+", lines[2]), lines
    assert lines[3] == lines[2].replace("PROCESSED", "DUPLICATE"), lines  # the same stored receipt


def test_the_node_readme_from_a_project_outside_the_repository(live: SidecarProcess, tmp_path: Path) -> None:
    readme = REPO / "clients" / "node" / "README.md"
    assert (REPO / "clients" / "node" / "dist" / "src" / "index.js").exists(), "build it: scripts/deps.d/30-node.sh"
    npm = shutil.which("npm")
    assert npm, "npm is needed (scripts/deps.d/30-node.sh)"
    packed = run([npm, "pack", "--pack-destination", str(tmp_path)], REPO / "clients" / "node").strip().splitlines()
    tarball = tmp_path / packed[-1]
    assert tarball.exists(), packed
    project = tmp_path / "consumer"
    project.mkdir()
    run([npm, "init", "-y"], project)
    run([npm, "install", "--no-audit", "--no-fund", str(tarball)], project)
    example = block(readme, "js", "processOnce")
    (project / "example.mjs").write_text(example)
    printed = run(["node", "example.mjs"], project, {**os.environ, "DEDUP_TARGET": live.target}).splitlines()
    text = readme.read_text()
    shown = re.search(r"^prints\n\n```\n(.*?)^```$", text, re.DOTALL | re.MULTILINE)
    assert shown, "the Node README should show what its example prints"
    assert printed == shown.group(1).splitlines()
