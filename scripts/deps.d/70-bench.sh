#!/usr/bin/env bash
# The benchmark's extras (matplotlib for the plot, psutil for CPU/RSS): tests/bench_smoke runs it.
# They are in requirements/dev.lock (scripts/install.sh installed them, hash-checked): only check.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python -c "import matplotlib, psutil" || {
  echo "deps(bench): matplotlib/psutil missing: run bash scripts/install.sh (requirements/dev.lock)" >&2
  exit 1
}
