#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (preset "fuzz") and runs each for a while on its seed corpus.
#   scripts/fuzz.sh [SECONDS_PER_TARGET=60] [TARGET...]
# New interesting inputs go to build-fuzz/corpus/<target>/ (not committed); crashes to build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
if ((${#targets[@]} == 0)); then
  for f in tests/fuzz/*_fuzz.cc; do targets+=("$(basename "$f" .cc)"); done
fi
scripts/build.sh fuzz --target "${targets[@]}"
for t in "${targets[@]}"; do
  work="build-fuzz/corpus/$t"
  mkdir -p "$work"
  echo "== $t (${seconds}s)"
  (cd build-fuzz && "tests/fuzz/$t" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 \
     "corpus/$t" "../tests/fuzz/corpus/$t")
done
