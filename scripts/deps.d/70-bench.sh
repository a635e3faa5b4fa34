#!/usr/bin/env bash
# The benchmark's extras (matplotlib for the plot, psutil for CPU/RSS): tests/bench_smoke runs it.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python -m pip install -q -e '.[bench]'
