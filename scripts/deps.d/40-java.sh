#!/usr/bin/env bash
# Java client toolchain: every Maven artifact the build, the tests and the
# examples need (grpc-java, protobuf-java, protoc + protoc-gen-grpc-java as
# pinned artifacts, JUnit, SnakeYAML), into ~/.m2, by building the client once
# without tests and writing its runtime classpath for run-main.sh / xlang.sh.
set -euo pipefail
cd "$(dirname "$0")/../../clients/java"
if ! command -v mvn >/dev/null || ! command -v java >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "deps java: apt-get install openjdk-17-jdk-headless maven" >&2
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
      openjdk-17-jdk-headless maven >/dev/null
  else
    echo "deps java: java 17 and maven are required" >&2
    exit 1
  fi
fi
mvn -B -q -Dstyle.color=never -DskipTests package dependency:resolve dependency:build-classpath \
  -Dmdep.outputFile=target/classpath.txt -Dmdep.includeScope=runtime
touch target/.run-main-built
