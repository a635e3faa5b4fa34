#!/usr/bin/env bash
# Cross-language protocol (shared by every client): reads DEDUP_TARGET,
# XLANG_MODE (commit | expect-duplicate), XLANG_NAMESPACE, XLANG_IDS (a,b,c);
# prints one summary line; exits 0 iff every expectation held.
# Builds the client first when needed (npm ci + tsc, a few seconds).
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules ] || npm ci --silent --no-audit --no-fund >&2
if [ ! -f dist/scripts/xlang.js ] || [ -n "$(find src scripts -newer dist/scripts/xlang.js -name '*.ts' | head -1)" ]; then
  npx tsc -p tsconfig.json >&2
fi
exec node dist/scripts/xlang.js
