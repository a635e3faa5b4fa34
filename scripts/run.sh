#!/usr/bin/env bash
# The one run command (`make run`): installs the sidecar into .venv if needed,
# then serves. No DEDUP_REDIS_URL: an embedded, durable store is started.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/dedup-sidecar ]; then
  python3 -m venv .venv
  # The locked runtime dependencies (hash-checked), then the local packages without resolving.
  .venv/bin/python -m pip install -q --require-hashes --only-binary=:all: \
    -r requirements/runtime.lock -r requirements/embedded.lock -r requirements/build.lock
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e proto/python -e .
fi
exec .venv/bin/dedup-sidecar serve "$@"
