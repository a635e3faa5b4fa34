"""The image stand-in: the Dockerfile's build stage replayed once per test worker."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.dockerfile import build_image_root


@pytest.fixture(scope="session")
def image_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="dedup-image-"))
    os.chmod(root, 0o755)
    yield build_image_root(root)
    shutil.rmtree(root, ignore_errors=True)
