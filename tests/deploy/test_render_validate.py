"""Every overlay renders offline and every object validates against the Kubernetes schemas."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from tests.deploy.manifests import (
    COMPONENTS,
    DEFAULT_MIN_VERSION,
    DEPLOY,
    MIN_VERSION,
    NEWEST_VERSION,
    OVERLAYS,
    render,
)


def test_there_are_overlays_and_components() -> None:
    assert {"dev", "production", "unix-socket", "legacy"} <= set(OVERLAYS)
    assert {"sidecar", "dev-redis", "unix-socket", "legacy-sidecar", "otlp", "prometheus", "mtls"} <= set(COMPONENTS)


def test_every_component_is_rendered_by_some_overlay() -> None:
    used = set()
    for path in [DEPLOY / "base", *[DEPLOY / "overlays" / name for name in OVERLAYS]]:
        document = yaml.safe_load((path / "kustomization.yaml").read_text())
        used |= {entry.rsplit("/", 1)[-1] for entry in document.get("components", [])}
    assert used == set(COMPONENTS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(overlay: str) -> None:
    objects = render(overlay)
    assert objects, f"{overlay} rendered nothing"
    for version in (MIN_VERSION.get(overlay, DEFAULT_MIN_VERSION), NEWEST_VERSION):
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                pytest.fail(f"{overlay}: {obj['kind']}/{obj['metadata']['name']} invalid for {version}: {err.message}")


def test_native_sidecar_is_rejected_by_old_schemas() -> None:
    """The validator really checks: the native sidecar field does not exist before 1.28."""
    deployment = next(obj for obj in render("dev") if obj["kind"] == "Deployment")
    with pytest.raises(kubernetes_validate.ValidationError, match="restartPolicy"):
        kubernetes_validate.validate(deployment, "1.27.0", strict=True)
