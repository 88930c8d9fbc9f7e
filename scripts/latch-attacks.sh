#!/usr/bin/env bash
# The latching attack table of docs/SECURITY.md: every attack scenario in every latching mode against
# the real latchkey-control and latchkey-relay on loopback. Prints a Markdown table (one row per
# scenario and mode) and the relay's drop counters; exits 1 if a cell the threat model does not
# list as a limit is not safe. About 5 minutes.
#   scripts/latch-attacks.sh [--no-build] [--modes=FIRST_PACKET,SIGNALING_SOURCE,HEURISTIC,STRICT] [--scenarios=a,b]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--no-build" ]; then
  shift
else
  scripts/build.sh default --target latch_attacks >&2
fi
exec build/tests/integration/latch_attacks "$@"
