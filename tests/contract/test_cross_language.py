"""Ids claimed and committed through one language's client are DUPLICATE for every other's.

Each language provides clients/<lang>/xlang.sh (the protocol is in
clients/python/xlang.py). For each ordered pair (A, B) of different languages
whose xlang.sh exists: A commits fresh ids, then B must see DUPLICATE on both
Claim and Check.
"""

from __future__ import annotations

import itertools
import subprocess
import uuid

import pytest

from tests.contract.conftest import REPO

LANGUAGES = ("python", "go", "node", "java")
PRESENT = [lang for lang in LANGUAGES if (REPO / "clients" / lang / "xlang.sh").is_file()]
REQUIRED = {"python", "go", "node", "java"}
NAMESPACE = "contract"


def xlang(lang: str, mode: str, ids: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(REPO / "clients" / lang / "xlang.sh")],
        env={**env, "XLANG_MODE": mode, "XLANG_NAMESPACE": NAMESPACE, "XLANG_IDS": ",".join(ids)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_required_languages_are_present() -> None:
    assert set(PRESENT) >= REQUIRED, f"xlang.sh found for {PRESENT}"


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("writer", "reader"), list(itertools.permutations(PRESENT, 2)))
def test_committed_by_writer_is_duplicate_for_reader(writer: str, reader: str, contract_env: dict[str, str]) -> None:
    ids = [f"xlang-{writer}-to-{reader}-{uuid.uuid4().hex[:8]}-{n}" for n in range(3)]
    wrote = xlang(writer, "commit", ids, contract_env)
    assert wrote.returncode == 0, f"{writer} commit: {wrote.stdout}{wrote.stderr[-3000:]}"
    read = xlang(reader, "expect-duplicate", ids, contract_env)
    assert read.returncode == 0, f"{reader} expect-duplicate: {read.stdout}{read.stderr[-3000:]}"
