#!/usr/bin/env bash
# The one test command (README, `make test`, .ci/run): installs what the tests
# need, checks generated code, lint and types, then runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "== generated code is up to date" >&2
bash scripts/check-generated.sh
echo "== lint (ruff) and types (mypy --strict sidecar/)" >&2
ruff check .
ruff format --check .
mypy
echo "== tests" >&2
pytest -n "${PYTEST_WORKERS:-2}" --dist loadgroup "$@"
