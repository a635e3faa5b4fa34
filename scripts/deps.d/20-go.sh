#!/usr/bin/env bash
# Go client toolchain: the pinned protoc plugins (from the Go module proxy, into
# .tools/go/bin) and the Go client's module dependencies, pre-built so that the
# contract tests only compile the client itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
# Keep in step with google.golang.org/protobuf and google.golang.org/grpc in clients/go/go.mod.
PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_GO_GRPC=v1.6.2
if ! command -v go >/dev/null; then
  echo "deps(go): the go toolchain is not on PATH; install Go >= 1.26 (see clients/go/go.mod)" >&2
  exit 1
fi
export GOBIN="$PWD/.tools/go/bin"
want="$PROTOC_GEN_GO $PROTOC_GEN_GO_GRPC"
if [ "$(cat "$GOBIN/.versions" 2>/dev/null)" != "$want" ]; then
  go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO"
  go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC"
  echo "$want" >"$GOBIN/.versions"
fi
cd clients/go
go mod download
go build ./... && go vet ./... >/dev/null
go test -count=1 -run '^$' ./... >/dev/null  # compiles the test binaries once (go caches them)
