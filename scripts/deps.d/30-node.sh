#!/usr/bin/env bash
# Node client toolchain: exact dependencies from clients/node/package-lock.json
# (ts-proto for `make gen`, buf for proto lint, @grpc/grpc-js ...), then a build.
set -euo pipefail
cd "$(dirname "$0")/../../clients/node"
if ! command -v npm >/dev/null; then
  echo "deps node: npm not found: install Node.js >= 20 (apt-get install nodejs npm)" >&2
  exit 1
fi
npm ci --silent --no-audit --no-fund
npx tsc -p tsconfig.json
