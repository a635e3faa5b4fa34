"""scripts/check-generated.sh compares generated outputs only, and catches drift in them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GO_STUB = REPO / "clients" / "go" / "dedupv1" / "dedup.pb.go"


def check_generated() -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", "scripts/check-generated.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(autouse=True)
def generators_available() -> None:
    plugins = [
        REPO / ".tools" / "go" / "bin" / "protoc-gen-go",
        REPO / "clients/node/node_modules/.bin/protoc-gen-ts_proto",
    ]
    missing = [str(p) for p in plugins if not p.exists()]
    assert not missing, f"run scripts/install.sh first: {missing}"


def test_hand_written_files_under_clients_and_proto_are_not_drift() -> None:
    scratch = [REPO / "clients" / "go" / f"scratch_{uuid.uuid4().hex[:8]}.go", REPO / "proto" / "NOTES.scratch.md"]
    readme = REPO / "clients" / "python" / "README.md"
    original = readme.read_text()
    try:
        for path in scratch:
            path.write_text("// hand-written, not committed\n")
        readme.write_text(original + "\nAn unstaged edit.\n")
        result = check_generated()
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        for path in scratch:
            path.unlink(missing_ok=True)
        readme.write_text(original)


def test_an_edited_generated_file_is_drift_and_is_regenerated() -> None:
    original = GO_STUB.read_text()
    try:
        GO_STUB.write_text(original + "\n// edited by hand\n")
        result = check_generated()
        assert result.returncode == 1, result.stdout + result.stderr
        assert "clients/go/dedupv1 differs" in result.stderr
        assert GO_STUB.read_text() == original  # regenerated, as after `make gen`
    finally:
        GO_STUB.write_text(original)
