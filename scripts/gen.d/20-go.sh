#!/usr/bin/env bash
# Go stubs for dedup.v1 into clients/go/dedupv1 (package dedupv1), with the
# pinned protoc-gen-go / protoc-gen-go-grpc from scripts/deps.d/20-go.sh and the
# protoc bundled in the pinned grpcio-tools (so the output is reproducible).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="$PWD/.tools/go/bin"
if [ ! -x "$bin/protoc-gen-go" ] || [ ! -x "$bin/protoc-gen-go-grpc" ]; then
  bash scripts/deps.d/20-go.sh
fi
out=clients/go/dedupv1
rm -f "$out"/*.pb.go
python -m grpc_tools.protoc -I proto \
  --plugin=protoc-gen-go="$bin/protoc-gen-go" --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
  --go_out=clients/go --go_opt=module=github.com/dedup-sidecar/dedup/clients/go \
  --go-grpc_out=clients/go --go-grpc_opt=module=github.com/dedup-sidecar/dedup/clients/go \
  proto/dedup/v1/dedup.proto
