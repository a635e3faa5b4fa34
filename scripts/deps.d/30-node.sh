#!/usr/bin/env bash
# Node client toolchain: exact dependencies from clients/node/package-lock.json
# (ts-proto for `make gen`, buf for proto lint, @grpc/grpc-js ...), then a build.
set -euo pipefail
cd "$(dirname "$0")/../../clients/node"
if ! command -v npm >/dev/null; then
  echo "deps node: npm not found: install Node.js >= 20 (apt-get install nodejs npm)" >&2
  exit 1
fi
# npm ci wipes node_modules: only when the lockfile changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --silent --no-audit --no-fund
fi
npx tsc -p tsconfig.json
