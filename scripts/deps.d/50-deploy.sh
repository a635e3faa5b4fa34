#!/usr/bin/env bash
# deploy/ validation tools (tests/deploy): kustomize, pinned, built from the Go
# module proxy into .venv/bin. hadolint and kubernetes-validate come from PyPI
# with the `test` extra. Without Go, `kubectl kustomize` is used if present.
set -euo pipefail
cd "$(dirname "$0")/../.."
KUSTOMIZE_VERSION=v5.8.1
bin="$PWD/.venv/bin"
if [ -x "$bin/kustomize" ] && "$bin/kustomize" version 2>/dev/null | grep -q "$KUSTOMIZE_VERSION"; then
  exit 0
fi
if command -v go >/dev/null; then
  echo "deps: go install kustomize $KUSTOMIZE_VERSION into .venv/bin" >&2
  GOBIN="$bin" GOFLAGS=-mod=mod go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
elif command -v kubectl >/dev/null; then
  echo "deps: no Go; tests/deploy will render with 'kubectl kustomize'" >&2
else
  echo "deps: neither Go nor kubectl: tests/deploy cannot render deploy/" >&2
  exit 1
fi
