#!/usr/bin/env bash
# Cross-language protocol, Go side: see internal/xlang (env DEDUP_TARGET, XLANG_MODE, XLANG_NAMESPACE, XLANG_IDS).
set -euo pipefail
cd "$(dirname "$0")"
exec go run ./internal/xlang
