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
# The Go, Node and Maven suites run inside pytest wrappers (tests/contract); each leaves its
# runner's own summary here (tests/support/runner_summary.py), printed after the run.
DEDUP_RUNNER_SUMMARIES="$(mktemp -d)"
export DEDUP_RUNNER_SUMMARIES
status=0
pytest -n "${PYTEST_WORKERS:-2}" --dist loadgroup "$@" || status=$?
echo "== non-Python runners (their own summaries)" >&2
if compgen -G "$DEDUP_RUNNER_SUMMARIES/*.txt" >/dev/null; then
  cat "$DEDUP_RUNNER_SUMMARIES"/*.txt >&2
else
  echo "(none ran)" >&2
fi
rm -rf "$DEDUP_RUNNER_SUMMARIES"
exit "$status"
