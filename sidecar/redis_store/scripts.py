"""The Lua sources, each with the shared prelude in front."""

from __future__ import annotations

from importlib import resources

SCRIPT_NAMES = ("check", "claim", "commit", "release", "renew", "inspect")


def _read(name: str) -> str:
    return resources.files("sidecar.redis_store").joinpath(f"lua/{name}.lua").read_text(encoding="utf-8")


def script_sources() -> dict[str, str]:
    """Every script's full source, by name."""
    prelude = _read("prelude")
    return {name: prelude + "\n" + _read(name) for name in SCRIPT_NAMES}
