#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite (unit, integration, fuzz replays).
#   scripts/test.sh            default build
#   scripts/test.sh asan       the same suite under AddressSanitizer + UBSan
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-default}"
scripts/build.sh "$preset"
# Integration tests start real servers on loopback; two at a time keeps the 2-core machine responsive.
ctest --preset "$preset" -j "${LATCHKEY_TEST_JOBS:-2}" --timeout 300
