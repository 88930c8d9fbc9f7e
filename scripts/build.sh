#!/usr/bin/env bash
# Configures and builds one CMake preset (default: "default"), installing dependencies first.
#   scripts/build.sh [PRESET] [extra cmake --build args]
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-default}"
shift || true
scripts/install-deps.sh
cmake --preset "$preset" >/dev/null
# Two compile jobs at most: the proto and gRPC headers make each job ~1 GiB, and the machine has 2 cores.
cmake --build --preset "$preset" -j "${LATCHKEY_BUILD_JOBS:-2}" "$@"
