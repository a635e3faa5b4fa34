#!/usr/bin/env bash
# Cross-language protocol (shared by every client): reads DEDUP_TARGET,
# XLANG_MODE (commit | expect-duplicate), XLANG_NAMESPACE, XLANG_IDS (a,b,c);
# prints one summary line; exits 0 iff every expectation held.
# Builds the client first when needed (mvn package, offline after scripts/deps.d/40-java.sh).
exec "$(dirname "$0")/run-main.sh" dev.dedup.client.examples.XLang
