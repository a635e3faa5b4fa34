"""The repository stands alone: no tracked file points outside it for the product contract."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("../" + "shared", "shared/" + "DESIGN.md")  # split so this file does not match itself


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in out.decode().split("\0") if name]


def test_no_tracked_file_points_outside_the_repository() -> None:
    offenders = []
    for path in tracked_files():
        if not path.is_file():
            continue  # deleted in the working tree
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # images
        offenders += [f"{path.relative_to(REPO)}: {word}" for word in FORBIDDEN if word in text]
    assert not offenders, "the contract lives in docs/contract.md:\n" + "\n".join(offenders)


def test_readme_links_the_contract_in_the_repository() -> None:
    readme = (REPO / "README.md").read_text()
    assert "(docs/contract.md)" in readme
    assert (REPO / "docs" / "contract.md").is_file()
