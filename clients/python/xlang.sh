#!/usr/bin/env bash
# Cross-language protocol, Python side: see xlang.py (env DEDUP_TARGET, XLANG_MODE, XLANG_NAMESPACE, XLANG_IDS).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="$here/../../.venv/bin/python"
[ -x "$python" ] || python=python3
exec "$python" "$here/xlang.py"
