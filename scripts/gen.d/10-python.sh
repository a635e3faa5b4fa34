#!/usr/bin/env bash
# Python stubs for dedup.v1 (message classes, grpc stubs, and .pyi types),
# into the dedup-proto distribution. Import path == proto path: dedup.v1.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=proto/python/src
rm -f "$out"/dedup/v1/*_pb2*.py "$out"/dedup/v1/*_pb2*.pyi
python -m grpc_tools.protoc -I proto \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  proto/dedup/v1/dedup.proto
touch "$out/dedup/__init__.py" "$out/dedup/v1/__init__.py" "$out/dedup/py.typed"
