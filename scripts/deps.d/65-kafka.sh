#!/usr/bin/env bash
# Kafka for tests/pipeline/test_kafka*.py and the Kafka examples:
#  - the broker's jars (org.apache.kafka:kafka_2.13 4.x from Maven Central) into .tools/kafka/libs,
#    run with the machine's java as a private KRaft process by tests/support/kafka.py;
#  - the Go example's modules (franz-go) built once; the Java example's jars into ~/.m2.
# Idempotent: each step is skipped when its output is present.
set -euo pipefail
cd "$(dirname "$0")/../.."
libs=.tools/kafka/libs
stamp="$libs/.pom-$(sha256sum tests/support/kafka/pom.xml | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  rm -rf "$libs"
  mkdir -p "$libs"
  mvn -B -q -Dstyle.color=never -f tests/support/kafka/pom.xml dependency:copy-dependencies \
    -DoutputDirectory="$PWD/$libs" -DincludeScope=runtime
  touch "$stamp"
fi
if command -v go >/dev/null && [ -f clients/go/examples/kafka/go.mod ]; then
  (cd clients/go/examples/kafka && go mod download && go build -o /dev/null .)
fi
if [ -f clients/java/examples/kafka/pom.xml ]; then
  (cd clients/java/examples/kafka && mvn -B -q -Dstyle.color=never -DskipTests package)
fi
