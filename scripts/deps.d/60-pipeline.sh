#!/usr/bin/env bash
# The real pipeline test (tests/pipeline) and the RabbitMQ examples:
#  - Debian's rabbitmq-server and postgresql when missing (root only; the test
#    starts private processes on loopback, never the system services);
#  - pika and psycopg for the Python consumer (the root package's test extras);
#  - the Go consumer's modules (amqp091-go, pgx) from the Go module proxy, built once.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || missing+=(rabbitmq-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "deps(pipeline): apt-get install ${missing[*]}" >&2
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
    # The packages start system services; the test runs its own private processes instead.
    for svc in rabbitmq-server postgresql; do
      if command -v service >/dev/null; then service "$svc" stop >/dev/null 2>&1 || true; fi
    done
  else
    echo "deps(pipeline): ${missing[*]} missing and not root: tests/pipeline will fail to start them" >&2
  fi
fi

# pika and psycopg come with the root package's test extras (scripts/install.sh).

if command -v go >/dev/null; then
  (cd clients/go/examples/rabbitmq && go mod download && go build -o /dev/null .)
fi
