#!/usr/bin/env bash
# NATS JetStream for tests/pipeline/test_nats*.py and the NATS examples:
#  - nats-server built from its Go module into .tools/nats/bin (skipped when that version is there);
#  - nats-py comes with the root package's test extras; the Node example's packages from npm, built.
set -euo pipefail
cd "$(dirname "$0")/../.."
NATS_SERVER=v2.15.2
bin=.tools/nats/bin
if [ "$(cat "$bin/.version" 2>/dev/null)" != "$NATS_SERVER" ]; then
  mkdir -p "$bin"
  GOBIN="$PWD/$bin" go install "github.com/nats-io/nats-server/v2@$NATS_SERVER"
  echo "$NATS_SERVER" >"$bin/.version"
fi
if [ -f clients/node/examples/nats/package.json ] && command -v npm >/dev/null; then
  # `file:../..` links the Node client, built by 30-node.sh (dist/); then the example itself.
  (
    cd clients/node/examples/nats
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
      npm ci --silent --no-audit --no-fund
    fi
    npm run --silent build
  )
fi
