#!/usr/bin/env bash
# Fails when regenerating from proto/ changes any committed generated file.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "check-generated: not a git checkout; skipping the drift check" >&2
  exit 0
fi
bash scripts/gen.sh >/dev/null
if ! git diff --exit-code --stat -- proto clients; then
  echo "check-generated: generated code differs from proto/: run 'make gen' and commit" >&2
  exit 1
fi
untracked=$(git ls-files --others --exclude-standard -- proto clients)
if [ -n "$untracked" ]; then
  echo "check-generated: untracked generated files: $untracked" >&2
  exit 1
fi
