"""Renders deploy/ offline (kustomize, or `kubectl kustomize`) and walks the rendered objects."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
OVERLAYS = sorted(path.name for path in (DEPLOY / "overlays").iterdir() if (path / "kustomization.yaml").exists())
COMPONENTS = sorted(path.name for path in (DEPLOY / "components").iterdir() if (path / "kustomization.yaml").exists())
SIDECAR = "dedup-sidecar"
# Kubernetes versions each overlay must validate against: the oldest it supports, and the newest schema we carry.
MIN_VERSION = {"legacy": "1.27.0"}
DEFAULT_MIN_VERSION = "1.29.0"  # native sidecars (initContainers with restartPolicy: Always)
NEWEST_VERSION = "1.37.0"

Object = dict[str, Any]


def kustomize_command() -> list[str]:
    """kustomize from .venv/bin or PATH (scripts/deps.d/50-deploy.sh installs it), else `kubectl kustomize`."""
    local = Path(sys.executable).parent / "kustomize"
    if local.exists():
        return [str(local), "build"]
    found = shutil.which("kustomize")
    if found:
        return [found, "build"]
    kubectl = shutil.which("kubectl")
    if kubectl:
        return [kubectl, "kustomize"]
    raise RuntimeError("no kustomize: run `bash scripts/deps.d/50-deploy.sh` (or install kubectl)")


@functools.cache
def _render_text(overlay: str) -> str:
    command = [*kustomize_command(), str(DEPLOY / "overlays" / overlay)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, env=os.environ)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stderr}")
    return result.stdout


def render(overlay: str) -> list[Object]:
    """The overlay's objects (a fresh copy each call)."""
    return [doc for doc in yaml.safe_load_all(_render_text(overlay)) if doc]


def workloads(objects: list[Object]) -> Iterator[Object]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield obj


def pod_spec(workload: Object) -> Object:
    spec: Object = workload["spec"]["template"]["spec"]
    return spec


def containers(spec: Object) -> Iterator[Object]:
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def sidecar_container(objects: list[Object]) -> tuple[Object, Object]:
    """(the Deployment carrying the sidecar, the sidecar's container spec)."""
    found = [
        (workload, container)
        for workload in workloads(objects)
        for container in containers(pod_spec(workload))
        if container["name"] == SIDECAR
    ]
    assert len(found) == 1, f"expected one {SIDECAR} container, found {len(found)}"
    return found[0]


def env_value(container: Object, name: str) -> Any:
    """The literal value of an env var, the valueFrom dict, or None when absent."""
    for item in container.get("env") or []:
        if item["name"] == name:
            return item.get("value", item.get("valueFrom"))
    return None


def find(objects: list[Object], kind: str, name: str) -> Object:
    matches = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: found {len(matches)}"
    return matches[0]
