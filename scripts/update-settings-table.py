"""Rewrites the README's settings table from sidecar/settings.py (`make settings-table`)."""

from __future__ import annotations

import re
from pathlib import Path

from sidecar.settings import settings_table

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- settings-table:start[^>]*-->\n).*?(\n<!-- settings-table:end -->)", re.S)

text = README.read_text()
updated = BLOCK.sub(lambda m: m.group(1) + settings_table() + m.group(2), text)
if updated == text:
    print("README settings table already up to date")
else:
    README.write_text(updated)
    print("README settings table updated")
