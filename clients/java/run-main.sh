#!/usr/bin/env bash
# Runs a main class of the client (e.g. dev.dedup.client.examples.ExampleConsumer),
# building the jar and its classpath first when missing or stale (quiet, no tests).
set -euo pipefail
cd "$(dirname "$0")"
main=$1
shift
stamp=target/classpath.txt
if [ ! -f "$stamp" ] || [ -n "$(find pom.xml src/main ../../proto -newer "$stamp" -type f | head -1)" ]; then
  mvn -B -q -Dstyle.color=never -DskipTests package dependency:build-classpath -Dmdep.outputFile="$stamp" -Dmdep.includeScope=runtime >&2
fi
exec java -cp "target/classes:$(cat "$stamp")" "$main" "$@"
