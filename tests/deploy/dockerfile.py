"""Reads the Dockerfile, and replays its build stage into a directory standing in for the image's root.

There is no Docker engine here: `build_image_root` runs the build stage's own
RUN lines (with /opt, /src, /tmp mapped under a temporary root), so the image's
virtualenv is made by exactly the Dockerfile's commands. What it cannot show:
the base image's own contents (python:3.11-slim), layer caching, and COPY
semantics beyond plain files and directories. Differences on purpose: `python`
is this machine's python3.11 (the venv's base must be runnable by the image's
uid), and pip may use its cache (the image build disables it).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.manifests import REPO

_MAPPED = re.compile(r"(?<![\w.$/-])/(opt|src|tmp)(?=/|\b)")


@dataclass
class Stage:
    base: str
    name: str = ""
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]


def parse(path: Path = REPO / "Dockerfile") -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages), with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            stages.append(Stage(parts[0], parts[2] if len(parts) > 2 else ""))
        elif not stages and keyword == "ARG":
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, args.strip()))
    return global_args, stages


def env_pairs(args: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(args))


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list)
    return [str(item) for item in value]


def mapped(text: str, root: Path) -> str:
    return _MAPPED.sub(lambda match: f"{root}/{match.group(1)}", text)


def base_python() -> str:
    """The image's `python`: a system interpreter every uid can run (the venv's base must be)."""
    found = shutil.which("python3.11", path="/usr/local/bin:/usr/bin")
    return found or sys.executable


def build_image_root(root: Path, build_args: dict[str, str] | None = None) -> Path:
    """Replays the build stage into `root` (the image's /); returns it."""
    _, stages = parse()
    build = stages[0]
    variables = dict(build_args or {})
    shims = root / ".base-image-bin"
    shims.mkdir()
    (shims / "python").symlink_to(base_python())
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{shims}:/usr/local/bin:/usr/bin:/bin"
    workdir = root
    for keyword, args in build.instructions:
        if keyword == "ARG":
            name, _, default = args.partition("=")
            variables.setdefault(name, default)
        elif keyword == "ENV":
            env.update(env_pairs(args))
        elif keyword == "WORKDIR":
            workdir = Path(mapped(args, root))
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, destination = shlex.split(args)
            for source in sources:
                target = workdir / destination if not destination.startswith("/") else Path(mapped(destination, root))
                if (REPO / source).is_dir():
                    shutil.copytree(REPO / source, target, dirs_exist_ok=True, ignore=_ignored)
                elif destination.endswith("/"):  # Docker creates the directory
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / source, target / Path(source).name)
                else:
                    if destination.endswith("/"):  # into a directory, as Docker does (made if missing)
                        target.mkdir(parents=True, exist_ok=True)
                        target = target / Path(source).name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / source, target)
        elif keyword == "RUN":
            (root / "tmp").mkdir(exist_ok=True)
            command = mapped(args, root)
            result = subprocess.run(
                ["/bin/sh", "-c", command],
                cwd=workdir,
                env={key: value for key, value in {**env, **variables}.items() if key != "PIP_NO_CACHE_DIR"},
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert result.returncode == 0, f"RUN {args}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return root


def _ignored(directory: str, names: list[str]) -> list[str]:
    return [name for name in names if name in ("__pycache__", "build") or name.endswith((".pyc", ".egg-info"))]
