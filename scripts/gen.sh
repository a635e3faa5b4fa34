#!/usr/bin/env bash
# Regenerates every generated file from proto/ (one command: `make gen`).
# Each language adds a script to scripts/gen.d/; they run in name order.
set -euo pipefail
cd "$(dirname "$0")/.."
for step in scripts/gen.d/*.sh; do
  echo "gen: $step" >&2
  bash "$step"
done
