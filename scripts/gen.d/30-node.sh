#!/usr/bin/env bash
# TypeScript stubs for dedup.v1 (messages + @grpc/grpc-js client) into
# clients/node/src/gen, with the locally installed ts-proto plugin driven by
# protoc from grpcio-tools (no remote generation). Needs `npm ci` in
# clients/node (scripts/deps.d/30-node.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
plugin=clients/node/node_modules/.bin/protoc-gen-ts_proto
if [ ! -x "$plugin" ]; then
  echo "gen node: $plugin missing: run scripts/deps.d/30-node.sh (npm ci) first" >&2
  exit 1
fi
out=clients/node/src/gen
rm -rf "$out"
mkdir -p "$out"
python -m grpc_tools.protoc -I proto \
  --plugin=protoc-gen-ts_proto="$plugin" \
  --ts_proto_out="$out" \
  --ts_proto_opt=outputServices=grpc-js,env=node,forceLong=bigint,esModuleInterop=true,useOptionals=none,oneof=unions-value,outputTypeRegistry=false,exportCommonSymbols=false,outputJsonMethods=false \
  proto/dedup/v1/dedup.proto
