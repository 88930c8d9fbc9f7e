# Shared by the shell tests (tests/deploy, tests/e2e): failing with a message, checks that count
# their failures, waiting with a deadline.
# Sourced by their lib.sh.

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

pass() { echo "PASS: $*"; }

# check DESCRIPTION COMMAND...: PASS when COMMAND succeeds, else FAIL and one more in $failures (a
# test reports them all, then fails once if any).
failures=0
check() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else
    echo "FAIL: $what" >&2
    failures=$((failures + 1))
  fi
}

# wait_for SECONDS DESCRIPTION COMMAND...: runs COMMAND every 0.2 s until it succeeds.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "timed out after ${seconds}s waiting for $what"
    sleep 0.2
  done
}

# remove_stale_scratch NAME: removes ${TMPDIR:-/tmp}/NAME-PID.* directories whose PID is dead (left
# by a run killed outright: no trap ran).
remove_stale_scratch() {
  local dir owner
  for dir in "${TMPDIR:-/tmp}/$1"-*.*; do
    owner=${dir##*/"$1"-}
    owner=${owner%%.*}
    [[ -d $dir && $owner =~ ^[0-9]+$ ]] || continue
    kill -0 "$owner" 2>/dev/null || rm -rf "$dir"
  done
}
