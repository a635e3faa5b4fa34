#!/usr/bin/env bash
# Fails when regenerating from proto/ changes any generated file (and only generated files:
# hand-written files under clients/ or proto/, committed or not, are not looked at).
# The generated outputs are the directories the scripts/gen.d steps write; the check copies
# them aside, regenerates, and compares. On a difference the regenerated files stay in place
# (as after `make gen`) and the diff is shown.
set -euo pipefail
cd "$(dirname "$0")/.."
GENERATED=(proto/python/src/dedup/v1 clients/go/dedupv1 clients/node/src/gen)
[ -x .venv/bin/python ] && PATH="$PWD/.venv/bin:$PATH"  # the pinned grpcio-tools, as `make gen`

before="$(mktemp -d)"
trap 'rm -rf "$before"' EXIT
for dir in "${GENERATED[@]}"; do
  mkdir -p "$before/$dir"
  [ -d "$dir" ] && cp -a "$dir/." "$before/$dir/"
done
restore() {
  for dir in "${GENERATED[@]}"; do
    rm -rf "$dir" && mkdir -p "$dir" && cp -a "$before/$dir/." "$dir/"
  done
}
if ! bash scripts/gen.sh >/dev/null; then
  restore  # a failed generator must not leave the tree without its generated files
  echo "check-generated: generating failed (see above); generated files left as they were" >&2
  exit 1
fi
status=0
for dir in "${GENERATED[@]}"; do
  # __pycache__ and editor droppings are not generated outputs.
  if ! diff -r -u -x __pycache__ -x '*.pyc' "$before/$dir" "$dir" >"$before/diff.txt" 2>&1; then
    echo "check-generated: $dir differs from what proto/ generates:" >&2
    head -40 "$before/diff.txt" >&2
    status=1
  fi
done
if [ "$status" != 0 ]; then
  echo "check-generated: run 'make gen' and commit the generated files" >&2
fi
exit "$status"
