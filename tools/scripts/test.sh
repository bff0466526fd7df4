#!/usr/bin/env bash
# Installs the dependencies, builds Customs and runs the whole test suite through
# CTest. Usage: tools/scripts/test.sh [release|asan] [extra ctest args...]
set -euo pipefail
cd "$(dirname "$0")/../.."
preset="${1:-release}"
shift || true

bash tools/scripts/install-deps.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset"
ctest --preset "$preset" "$@"
