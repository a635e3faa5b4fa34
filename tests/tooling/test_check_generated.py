"""scripts/check-generated.sh compares generated outputs only, and catches drift in them.

It runs on a copy of the generator inputs and outputs (scripts/, proto/, the generated client
directories; the generator plugins linked), never on the checkout itself: regenerating in place
would pull the stubs from under tests running at the same time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COPIED = ("scripts", "proto", "clients/go/dedupv1", "clients/node/src/gen", "clients/python/README.md")
LINKED = (".tools", "clients/node/node_modules")  # the pinned generator plugins
PLUGINS = (".tools/go/bin/protoc-gen-go", "clients/node/node_modules/.bin/protoc-gen-ts_proto")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    missing = [p for p in PLUGINS if not (REPO / p).exists()]
    assert not missing, f"run scripts/install.sh first: {missing}"
    for name in COPIED:
        source, target = REPO / name, tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, target)
    for name in LINKED:
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


def check_generated(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "scripts/check-generated.sh"], cwd=tree, env=env, capture_output=True, text=True, timeout=300
    )


def test_hand_written_files_under_clients_and_proto_are_not_drift(tree: Path) -> None:
    (tree / "clients" / "go" / f"scratch_{uuid.uuid4().hex[:8]}.go").write_text("// hand-written, not committed\n")
    (tree / "proto" / "NOTES.scratch.md").write_text("notes\n")
    readme = tree / "clients" / "python" / "README.md"
    readme.write_text(readme.read_text() + "\nAn unstaged edit.\n")
    result = check_generated(tree)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_edited_generated_file_is_drift_and_is_regenerated(tree: Path) -> None:
    stub = tree / "clients" / "go" / "dedupv1" / "dedup.pb.go"
    original = stub.read_text()
    stub.write_text(original + "\n// edited by hand\n")
    result = check_generated(tree)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "clients/go/dedupv1 differs" in result.stderr
    assert stub.read_text() == original  # regenerated, as after `make gen`
