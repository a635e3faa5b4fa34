#!/usr/bin/env bash
# Runs a main class of the client (e.g. dev.dedup.client.examples.ExampleConsumer),
# building the classes and the runtime classpath first when missing or stale
# (quiet, no tests; offline after scripts/deps.d/40-java.sh).
set -euo pipefail
cd "$(dirname "$0")"
main=$1
shift
stamp=target/.run-main-built
if [ ! -f "$stamp" ] || [ ! -f target/classpath.txt ] ||
  [ -n "$(find pom.xml src/main ../../proto/dedup -newer "$stamp" -type f | head -1)" ]; then
  mvn -B -q -Dstyle.color=never -DskipTests package dependency:build-classpath \
    -Dmdep.outputFile=target/classpath.txt -Dmdep.includeScope=runtime >&2
  touch "$stamp"
fi
exec java -cp "target/classes:$(cat target/classpath.txt)" "$main" "$@"
