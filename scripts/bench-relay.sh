#!/usr/bin/env bash
# Relay benchmark: N concurrent calls (2 x 50 packets/s of 172-byte RTP each) through latchkey-relay,
# rtpengine (userspace forwarding) and a minimal single-threaded forwarder, on loopback (latchkey-epoll:
# latchkey-relay with --packet_io=epoll instead of the default, io_uring where available). The relay
# under test is pinned to one core, the load generator (relay_bench) to the other. One JSON object per
# run on stdout, also saved under build/bench/relay-<date>.jsonl; the first line describes the setup.
# See docs/PERFORMANCE.md ("## Relay") for the fields and the results.
#
#   scripts/bench-relay.sh [--calls="250 500 1000 1500 2000"] [--targets="latchkey latchkey-epoll rtpengine minimal"]
#                          [--duration=10s] [--warmup=4s] [--threads=1] [--rtpengine_threads=1]
#                          [--repeat=1] [--rt=1] [--nice=-15] [--no-build] [--baseline_relay=PATH]
#                          [-- extra relay_bench flags]
#
# --baseline_relay: another latchkey-relay binary (say, built from the commit before a change) measured
# as target `latchkey-before` in the same run, side by side with `latchkey`.
#
# --threads: latchkey-relay packet threads; --rtpengine_threads: rtpengine --num-threads. One core for
# the relay is the fair comparison, so both default to 1. The machine is shared, and other work on it
# preempts the measured processes for milliseconds at a time (p99 latencies of 5-10 ms that are not the
# relay's): --rt=1 runs the relay under test, latchkey-control and the generator SCHED_RR (priority 10;
# the kernel still leaves other tasks a few % of each core), --nice runs the benchmark in a session of
# its own whose scheduling autogroup, and every process in it, get that nice value. --rt=0 --nice=0
# leave priorities alone (and expect noisy latencies).
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."

calls_list="250 500 1000 1500 2000"
targets="latchkey latchkey-epoll rtpengine minimal"
duration=10s
warmup=4s
threads=1
rtpengine_threads=1
repeat=1
rt=1
nice_level=-15
build=1
baseline_relay=""
extra=()
args=("$@")
while (($#)); do
  case "$1" in
    --calls=*) calls_list="${1#*=}" ;;
    --targets=*) targets="${1#*=}" ;;
    --duration=*) duration="${1#*=}" ;;
    --warmup=*) warmup="${1#*=}" ;;
    --threads=*) threads="${1#*=}" ;;
    --rtpengine_threads=*) rtpengine_threads="${1#*=}" ;;
    --repeat=*) repeat="${1#*=}" ;;
    --nice=*) nice_level="${1#*=}" ;;
    --rt=*) rt="${1#*=}" ;;
    --no-build) build=0 ;;
    --baseline_relay=*) baseline_relay="${1#*=}" ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "bench-relay: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
calls_list="${calls_list//,/ }"
targets="${targets//,/ }"

# A session of its own: its autogroup (the unit the kernel shares CPU between when autogrouping is on)
# is the only thing --nice changes, and it goes away with the benchmark. Signals are passed on.
if [[ "$nice_level" != 0 && -z "${LATCHKEY_BENCH_SESSION:-}" ]] && command -v setsid >/dev/null; then
  LATCHKEY_BENCH_SESSION=1 setsid --wait "$self" "${args[@]}" &
  session=$!
  trap 'kill -TERM -- -$session 2>/dev/null || true' INT TERM
  rc=0
  wait $session || rc=$?
  # A signal interrupts the first wait; the session cleans up and exits.
  kill -0 $session 2>/dev/null && { wait $session || rc=$?; }
  exit $rc
fi

if [[ "$nice_level" != 0 ]]; then
  if [[ -w /proc/self/autogroup ]]; then echo "$nice_level" >/proc/self/autogroup 2>/dev/null || true; fi
  renice -n "$nice_level" -p $$ >/dev/null 2>&1 || true  # children inherit it
fi

if ((build)); then
  scripts/build.sh default --target latchkey-control latchkey-relay relay_bench minimal_forwarder >/dev/null
fi
command -v taskset >/dev/null || { echo "bench-relay: taskset (util-linux) is required" >&2; exit 1; }
gen_cpu=0; relay_cpu=1
[ "$(nproc)" -ge 2 ] || { relay_cpu=0; echo "bench-relay: warning: one core, relay and generator share it" >&2; }

prio=()
if [[ "$rt" == 1 ]]; then
  if chrt -r 10 true 2>/dev/null; then prio=(chrt -r 10); else echo "bench-relay: warning: chrt -r failed, running without real-time priority" >&2; rt=0; fi
fi

out=build/bench; mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results="$out/relay-$stamp.jsonl"
logs="$out/relay-$stamp-logs"; mkdir -p "$logs"
# The build tree may be shared and rebuilt while this runs: measure copies taken now (removed at exit).
bin="$logs/bin"; mkdir -p "$bin"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$bin"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for b in services/control/latchkey-control media-relay/latchkey-relay tests/benchmark/relay_bench \
         tests/benchmark/minimal_forwarder; do
  cp "build/$b" "$bin/"
  strip --strip-debug "$bin/$(basename "$b")" 2>/dev/null || true
done
control_bin=$bin/latchkey-control
relay_bin=$bin/latchkey-relay
if [[ -n "$baseline_relay" ]]; then
  cp "$baseline_relay" "$bin/latchkey-relay-before"
  strip --strip-debug "$bin/latchkey-relay-before" 2>/dev/null || true
fi
git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$([[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] && echo true || echo false)

# Ports (all on 127.0.0.1): phones 10000-17999 (relay_bench: 4 per call), minimal_forwarder 20000+,
# latchkey-relay media 20000-31999 (below the ephemeral range), rtpengine media 40000-49999 and ng
# 2223, control/relay gRPC 7620/7630 and metrics 9620/9630 (apart from bench-control.sh's 75xx).
control_addr=127.0.0.1:7620
ng_addr=127.0.0.1:2223
minimal_base=20000

# rtpengine: the Debian package, installed on first use; the target is skipped if that fails.
want_rtpengine=0
for t in $targets; do [[ $t == rtpengine ]] && want_rtpengine=1; done
if ((want_rtpengine)) && ! command -v rtpengine >/dev/null; then
  echo "bench-relay: installing rtpengine-daemon" >&2
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rtpengine-daemon; } >"$logs/rtpengine-install.log" 2>&1 \
     || ! command -v rtpengine >/dev/null; then
    echo "bench-relay: SKIPPING target rtpengine: apt-get install rtpengine-daemon failed (see $logs/rtpengine-install.log)" >&2
    targets=$(echo " $targets " | sed 's/ rtpengine / /g')
  fi
fi


# Stops the given pids: TERM, then KILL after 10 s.
stop() {
  local p deadline=$((SECONDS + 10))
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do
    while kill -0 "$p" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}

port_busy() { [[ -n "$(ss -Hlun "sport = :$1" 2>/dev/null)" ]]; }

seconds_of() {  # 10s, 500ms, 2m -> whole seconds (rounded up)
  case "$1" in
    *ms) echo $(( (${1%ms} + 999) / 1000 )) ;;
    *s) echo "${1%s}" ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *) echo 60 ;;
  esac
}
# Setup and teardown of 2000 calls take a few seconds; a run never takes longer than this.
run_limit=$(( $(seconds_of "$warmup") + $(seconds_of "$duration") + 120 ))

loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
echo "{\"bench\":\"relay\",\"date\":\"$stamp\",\"cpus\":$(nproc),\"gen_cpu\":$gen_cpu,\"relay_cpu\":$relay_cpu,\"nice\":$nice_level,\"rt\":$rt,\"duration\":\"$duration\",\"warmup\":\"$warmup\",\"latchkey_threads\":$threads,\"rtpengine_threads\":$rtpengine_threads,\"kernel\":\"$(uname -r)\",\"git\":\"$git_rev\",\"tree_modified\":$git_dirty,\"loadavg\":\"$loadavg\"}" | tee "$results"

run_one() {
  local target=$1 calls=$2 pid note args=() bench_target=$1 packet_io=auto
  case "$target" in
    latchkey|latchkey-epoll|latchkey-before)
      bench_target=latchkey
      [[ $target == latchkey-epoll ]] && packet_io=epoll
      local relay=$relay_bin
      if [[ $target == latchkey-before ]]; then
        [[ -x "$bin/latchkey-relay-before" ]] || { echo "bench-relay: latchkey-before needs --baseline_relay" >&2; return; }
        relay=$bin/latchkey-relay-before
      fi
      taskset -c "$relay_cpu" "${prio[@]}" "$control_bin" --listen=$control_addr --metrics_listen=127.0.0.1:9620 \
        --log_level=warning >>"$logs/control.log" 2>&1 &
      pids+=($!)
      taskset -c "$relay_cpu" "${prio[@]}" "$relay" --control=$control_addr --listen=127.0.0.1:7630 \
        --metrics_listen=127.0.0.1:9630 --worker_id=bench-relay --port_min=20000 --port_max=31999 \
        --port_quarantine=1s --max_sessions=100000 --threads="$threads" --packet_io=$packet_io --log_level=warning \
        >>"$logs/relay.log" 2>&1 &
      pid=$!; pids+=($pid)
      note="$(basename "$relay") --threads=$threads --packet_io=$packet_io; latchkey-control on the same core (idle while measuring)"
      args=(--control=$control_addr)
      ;;
    rtpengine)
      if port_busy 2223; then
        echo "bench-relay: SKIPPING rtpengine: UDP 127.0.0.1:2223 is already in use" >&2
        return
      fi
      taskset -c "$relay_cpu" "${prio[@]}" rtpengine --config-file=none --foreground --log-stderr --log-level=4 --table=-1 \
        --interface=127.0.0.1 --listen-ng=$ng_addr --port-min=40000 --port-max=49999 \
        --num-threads="$rtpengine_threads" --timeout=120 --delete-delay=0 >>"$logs/rtpengine.log" 2>&1 &
      pid=$!; pids+=($pid)
      note="rtpengine $(rtpengine --version 2>&1 | sed -n 's/^Version: //p') --num-threads=$rtpengine_threads, userspace only (--table=-1)"
      args=(--ng=$ng_addr)
      ;;
    minimal)
      taskset -c "$relay_cpu" "${prio[@]}" "$bin/minimal_forwarder" --calls="$calls" --base_port=$minimal_base >>"$logs/minimal.log" 2>&1 &
      pid=$!; pids+=($pid)
      note="minimal_forwarder, one thread"
      args=(--minimal_base_port=$minimal_base)
      sleep 0.3
      ;;
    *) echo "bench-relay: unknown target $target" >&2; return ;;
  esac
  local line rc=0
  line=$(timeout --foreground --kill-after=5 "$run_limit" taskset -c "$gen_cpu" "${prio[@]}" "$bin/relay_bench" --target="$bench_target" \
           --calls="$calls" --duration="$duration" --warmup="$warmup" --target_pid="$pid" --note="$note" \
           "${args[@]}" "${extra[@]}") || rc=$?
  if [[ -z "$line" ]]; then
    line="{\"target\":\"$target\",\"calls\":$calls,\"error\":\"relay_bench exited with $rc$([[ $rc == 124 ]] && echo ' (timed out)')\"}"
  fi
  [[ $target != "$bench_target" ]] && line="${line/\"target\":\"$bench_target\"/\"target\":\"$target\"}"
  kill -0 "$pid" 2>/dev/null || line="${line%\}},\"target_died\":true}"
  echo "$line" | tee -a "$results"
  stop "${pids[@]}"
}

for ((r = 0; r < repeat; r++)); do
  for target in $targets; do
    for calls in $calls_list; do
      run_one "$target" "$calls"
    done
  done
done
echo "bench-relay: results in $results, relay logs in $logs" >&2
