#!/usr/bin/env bash
# The one run command (`make run`): installs the sidecar into .venv if needed,
# then serves. No DEDUP_REDIS_URL: an embedded, durable store is started.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/dedup-sidecar ]; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q -e proto/python -e .
fi
exec .venv/bin/dedup-sidecar serve "$@"
