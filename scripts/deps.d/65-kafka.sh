#!/usr/bin/env bash
# Kafka for tests/pipeline/test_kafka*.py and the Kafka examples:
#  - the broker's jars (org.apache.kafka:kafka_2.13 4.x from Maven Central) into .tools/kafka/libs,
#    run with the machine's java as a private KRaft process by tests/support/kafka.py;
#  - the Go example's modules (franz-go) built once; the Java example built (its jars in target/lib).
# Idempotent: each step is skipped when its output is present.
set -euo pipefail
cd "$(dirname "$0")/../.."
libs=.tools/kafka/libs
stamp="$libs/.pom-$(sha256sum tests/support/kafka-libs.pom.xml | cut -c1-16)"
if [ ! -e "$stamp" ]; then
  rm -rf "$libs"
  mkdir -p "$libs"
  mvn -B -q -Dstyle.color=never -f tests/support/kafka-libs.pom.xml dependency:copy-dependencies \
    -DoutputDirectory="$PWD/$libs" -DincludeScope=runtime
  touch "$stamp"
fi
if command -v go >/dev/null && [ -f clients/go/examples/kafka/go.mod ]; then
  (cd clients/go/examples/kafka && go mod download && go build -o /dev/null .)
fi
# The Java example depends on the Java client through the local Maven repository: install the
# client when its jar there is missing or older than its sources, then build the example.
client_jar="$HOME/.m2/repository/dev/dedup/dedup-client/0.1.0/dedup-client-0.1.0.jar"
if [ ! -e "$client_jar" ] || [ -n "$(find clients/java/pom.xml clients/java/src/main proto -newer "$client_jar" -type f | head -1)" ]; then
  (cd clients/java && mvn -B -q -Dstyle.color=never -DskipTests install)
fi
example=clients/java/examples/kafka
if [ ! -d "$example/target/lib" ] || [ -n "$(find "$example/pom.xml" "$example/src" "$client_jar" -newer "$example/target/lib" -type f | head -1)" ]; then
  (cd "$example" && mvn -B -q -Dstyle.color=never -DskipTests package && touch target/lib)
fi
