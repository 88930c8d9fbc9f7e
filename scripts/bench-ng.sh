#!/usr/bin/env bash
# ng call-setup benchmark (issue 13): calls (offer + answer + delete, as Kamailio's rtpengine module
# sends them) against latchkey-control's ng front door (with one latchkey-relay behind it) and against
# Debian's rtpengine, side by side in one run, with 1, 8 and 32 calls outstanding. The server(s) run
# pinned to core 1, the load generator (tests/benchmark/ng_bench.cc) to core 0. Every measured run gets
# freshly started servers; with --repeat=N every (delete delay, outstanding) point runs N times per
# target, the targets alternating (latchkey first, then rtpengine first, ...), and the summary gives
# medians. One JSON object per line on stdout, also saved as build/bench/ng-<date>.jsonl (logs next
# to it); a summary table on stderr. See docs/PERFORMANCE.md ("## ng call setup (issue 13)").
#
#   scripts/bench-ng.sh [--duration=5s] [--warmup=1s] [--repeat=1] [--outstanding="1 8 32"]
#                       [--targets="latchkey rtpengine minimal"] [--delete_delays="0 30"] [--long_delay_duration=1.5s]
#                       [--rtpengine_threads="1"] [--ng_threads=4] [--rt=0] [--no-build] [-- ng_bench flags]
#
# Delete delay: how long a deleted call keeps its ports (rtpengine's and Latchkey's default: 30 s).
# With 0 every delete frees its ports at once, so a short port range (20000-31999) is enough; the
# deletes carry `delete-delay: 0` (the ng protocol's per-request delay), latchkey-control also gets
# `ng { delete_delay { seconds: 0 } }` (which it currently turns into its 30 s default, so the request
# key is what makes the delay 0) and rtpengine --delete-delay=0. With 30 every call keeps 4 ports for
# 30 s after its delete, so those runs use 10000-59999 (12,500 calls) and a shorter window
# (--long_delay_duration, warm-up 0.5 s) to stay inside it; a run that still runs out shows it as
# errors ("Ran out of ports") or load_limit answers.
#
# --rtpengine_threads: rtpengine --num-threads, a list ("1 4" measures both as targets rtpengine-t1 and
# rtpengine-t4); either way rtpengine gets the one server core, as latchkey-control (its ng threads,
# --ng_threads, default 4) and latchkey-relay do. --rt=1 runs servers and generator SCHED_RR 10 (the
# machine is shared; see "## Relay").
set -euo pipefail
cd "$(dirname "$0")/.."

duration=5s
warmup=1s
repeat=1
outstanding_list="1 8 32"
targets="latchkey rtpengine minimal"
delays="0 30"
long_delay_duration=1.5s
rtpengine_threads="1"
ng_threads=4
rt=0
build=1
extra=()
while (($#)); do
  case "$1" in
    --duration=*) duration="${1#*=}" ;;
    --warmup=*) warmup="${1#*=}" ;;
    --repeat=*) repeat="${1#*=}" ;;
    --outstanding=*) outstanding_list="${1#*=}" ;;
    --targets=*) targets="${1#*=}" ;;
    --delete_delays=*) delays="${1#*=}" ;;
    --long_delay_duration=*) long_delay_duration="${1#*=}" ;;
    --rtpengine_threads=*) rtpengine_threads="${1#*=}" ;;
    --ng_threads=*) ng_threads="${1#*=}" ;;
    --rt=*) rt="${1#*=}" ;;
    --no-build) build=0 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "bench-ng: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
outstanding_list="${outstanding_list//,/ }"
targets="${targets//,/ }"
delays="${delays//,/ }"
rtpengine_threads="${rtpengine_threads//,/ }"

if ((build)); then
  scripts/build.sh default --target latchkey-control latchkey-relay ng_bench minimal_ng_server >/dev/null
fi
for tool in taskset jq curl ss; do
  command -v $tool >/dev/null || { echo "bench-ng: $tool is required" >&2; exit 1; }
done
gen_cpu=0; server_cpu=1
[ "$(nproc)" -ge 2 ] || { server_cpu=0; echo "bench-ng: warning: one core, servers and generator share it" >&2; }
prio=()
if [[ "$rt" == 1 ]]; then
  if chrt -r 10 true 2>/dev/null; then prio=(chrt -r 10); else echo "bench-ng: warning: chrt -r failed, no real-time priority" >&2; rt=0; fi
fi

# Targets: latchkey, minimal (tests/benchmark/minimal_ng_server.cc: decode, bind/close 4 sockets per call,
# encode; the floor any ng server stands on) and rtpengine once per --rtpengine_threads value (named
# rtpengine-tN if several).
target_list=()
for t in $targets; do
  if [[ $t == rtpengine ]]; then
    if ! command -v rtpengine >/dev/null; then
      echo "bench-ng: SKIPPING rtpengine: not installed (apt-get install rtpengine-daemon)" >&2
      continue
    fi
    # shellcheck disable=SC2086 # the list's words, counted
    set -- $rtpengine_threads
    if (($# > 1)); then for n in $rtpengine_threads; do target_list+=("rtpengine-t$n"); done; else target_list+=("rtpengine"); fi
  else
    target_list+=("$t")
  fi
done

out=build/bench; mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results="$out/ng-$stamp.jsonl"
logs="$out/ng-$stamp-logs"; mkdir -p "$logs"
# The build tree is shared and may be rebuilt while this runs: measure copies taken now.
bin="$logs/bin"; mkdir -p "$bin"
pids=()
stop() {
  local p deadline=$((SECONDS + 3))
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  # latchkey-relay drains on TERM (it waits for its sessions): the rest of the wait is KILL.
  for p in "${pids[@]}"; do
    while kill -0 "$p" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
trap 'stop; rm -rf "$bin"' EXIT
trap 'exit 130' INT TERM
for b in services/control/latchkey-control media-relay/latchkey-relay tests/benchmark/ng_bench tests/benchmark/minimal_ng_server; do
  cp "build/$b" "$bin/"
  strip --strip-debug "$bin/$(basename "$b")" 2>/dev/null || true
done
git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$([[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] && echo true || echo false)
rtpengine_version=$(rtpengine --version 2>&1 | sed -n 's/^Version: //p' || true)

# Addresses (127.0.0.1): control gRPC 7640 / worker 7641 / metrics 9640, relay 7650 / metrics 9650,
# ng 2224 (latchkey), 2226 (rtpengine) and 2228 (minimal); media ports as above (apart from
# bench-relay/-control's).
ng_latchkey=127.0.0.1:2224
ng_rtpengine=127.0.0.1:2226
ng_minimal=127.0.0.1:2228
port_busy() { [[ -n "$(ss -Hlun "sport = :$1" 2>/dev/null)" ]]; }

seconds_of() {  # 10s, 1.5s, 500ms -> whole seconds, rounded up
  case "$1" in
    *ms) echo $(( (${1%ms} + 999) / 1000 )) ;;
    *s) awk -v s="${1%s}" 'BEGIN { printf "%d", (s == int(s)) ? s : int(s) + 1 }' ;;
    *) echo 60 ;;
  esac
}

loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
echo "{\"bench\":\"ng\",\"date\":\"$stamp\",\"cpus\":$(nproc),\"gen_cpu\":$gen_cpu,\"server_cpu\":$server_cpu,\"rt\":$rt,\"duration\":\"$duration\",\"warmup\":\"$warmup\",\"long_delay_duration\":\"$long_delay_duration\",\"repeat\":$repeat,\"ng_threads\":$ng_threads,\"rtpengine\":\"$rtpengine_version\",\"kernel\":\"$(uname -r)\",\"git\":\"$git_rev\",\"tree_modified\":$git_dirty,\"loadavg\":\"$loadavg\"}" | tee "$results"

# run_one TARGET DELAY OUTSTANDING ROUND: fresh server(s), one ng_bench run, one JSON line.
run_one() {
  local target=$1 delay=$2 n=$3 round=$4 ng target_pids note port_min port_max dur=$duration warm=$warmup
  if [[ $delay == 0 ]]; then
    port_min=20000; port_max=31999
  else
    port_min=10000; port_max=59999; dur=$long_delay_duration; warm=0.5s
  fi
  local bench_delay=-1 via=default
  if [[ $delay == 0 ]]; then bench_delay=0; via=request; fi
  case "$target" in
    latchkey)
      local config="$logs/control-delay$delay.textproto"
      echo "ng { delete_delay { seconds: $delay } threads: $ng_threads }" >"$config"
      taskset -c "$server_cpu" "${prio[@]}" "$bin/latchkey-control" --config="$config" --listen=127.0.0.1:7640 \
        --worker_listen=127.0.0.1:7641 --metrics_listen=127.0.0.1:9640 --ng_listen=$ng_latchkey \
        --log_level=warning >>"$logs/control.log" 2>&1 &
      local control_pid=$!; pids+=("$control_pid")
      taskset -c "$server_cpu" "${prio[@]}" "$bin/latchkey-relay" --control=127.0.0.1:7641 --listen=127.0.0.1:7650 \
        --metrics_listen=127.0.0.1:9650 --worker_id=bench-relay --port_min=$port_min --port_max=$port_max \
        --port_quarantine=1s --max_sessions=100000 --threads=1 --keepalive_mode=off --stun_listen=off --log_level=warning \
        >>"$logs/relay.log" 2>&1 &
      local relay_pid=$!; pids+=("$relay_pid")
      # Ready when the relay has registered (bounded: 10 s).
      local _
      for _ in $(seq 100); do
        curl -sf http://127.0.0.1:9640/metrics 2>/dev/null | grep -q '^latchkey_workers{state="ready"} 1' && break
        sleep 0.1
      done
      ng=$ng_latchkey
      target_pids="$control_pid,$relay_pid"
      note="latchkey-control (ng threads $ng_threads, memory store, plaintext gRPC) + latchkey-relay --threads=1 ports $port_min-$port_max, both on core $server_cpu"
      ;;
    minimal)
      taskset -c "$server_cpu" "${prio[@]}" "$bin/minimal_ng_server" --listen_port="${ng_minimal##*:}" \
        --port_min=$port_min --port_max=$port_max >>"$logs/minimal.log" 2>&1 &
      local minimal_pid=$!; pids+=("$minimal_pid")
      ng=$ng_minimal
      target_pids="$minimal_pid"
      note="minimal_ng_server (one thread: bencode decode/encode, 4 sockets bound per offer and closed on delete, SDP echoed) ports $port_min-$port_max, on core $server_cpu"
      ;;
    rtpengine*)
      local threads=${target#rtpengine-t}
      [[ $target == rtpengine ]] && threads=$rtpengine_threads
      if port_busy 2226; then echo "bench-ng: SKIPPING rtpengine: UDP $ng_rtpengine is in use" >&2; return; fi
      taskset -c "$server_cpu" "${prio[@]}" rtpengine --config-file=none --foreground --log-stderr --log-level=4 \
        --table=-1 --interface=127.0.0.1 --listen-ng=$ng_rtpengine --port-min=$port_min --port-max=$port_max \
        --num-threads="$threads" --timeout=120 --delete-delay="$delay" >>"$logs/rtpengine.log" 2>&1 &
      local rtp_pid=$!; pids+=("$rtp_pid")
      ng=$ng_rtpengine
      target_pids="$rtp_pid"
      note="rtpengine $rtpengine_version --num-threads=$threads, userspace only (--table=-1), ports $port_min-$port_max, on core $server_cpu"
      ;;
    *) echo "bench-ng: unknown target $target" >&2; return ;;
  esac
  local line rc=0 limit=$(( $(seconds_of "$warm") + $(seconds_of "$dur") + 60 ))
  line=$(timeout --foreground --kill-after=5 "$limit" taskset -c "$gen_cpu" "${prio[@]}" "$bin/ng_bench" --ng="$ng" \
           --target="$target" --outstanding="$n" --duration="$dur" --warmup="$warm" --delete_delay="$bench_delay" \
           --target_pids="$target_pids" --note="$note" \
           --extra_json="\"round\":$round,\"delete_delay_s\":$delay,\"delete_delay_via\":\"$via\",\"loadavg\":\"$(cut -d' ' -f1 /proc/loadavg)\"" \
           "${extra[@]}") || rc=$?
  [[ -n "$line" ]] || line="{\"bench\":\"ng\",\"target\":\"$target\",\"outstanding\":$n,\"delete_delay_s\":$delay,\"round\":$round,\"error\":\"ng_bench exited with $rc\"}"
  echo "$line" | tee -a "$results"
  stop
}

for round in $(seq "$repeat"); do
  order=("${target_list[@]}")
  if ((round % 2 == 0)); then
    order=()
    for ((i = ${#target_list[@]} - 1; i >= 0; i--)); do order+=("${target_list[$i]}"); done
  fi
  for delay in $delays; do
    for n in $outstanding_list; do
      for target in "${order[@]}"; do
        run_one "$target" "$delay" "$n" "$round"
      done
    done
  done
done

# Summary: medians over the rounds per (delete delay, outstanding, target), the goal's ratio at 8.
summary=$(jq -s -c '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  [.[] | select(.calls_per_s != null)] | group_by([.delete_delay_s, .outstanding, .target])[]
  | {summary: "ng", delete_delay_s: .[0].delete_delay_s, outstanding: .[0].outstanding, target: .[0].target, runs: length,
     calls_per_s: ([.[].calls_per_s] | median), offer_p50_ms: ([.[].offer_p50_ms] | median),
     offer_p99_ms: ([.[].offer_p99_ms] | median), answer_p99_ms: ([.[].answer_p99_ms] | median),
     delete_p99_ms: ([.[].delete_p99_ms] | median), call_p99_ms: ([.[].call_p99_ms] | median),
     failures: ([.[] | .errors + .timeouts + .load_limit + .bad_replies] | add),
     calls_per_s_each: [.[].calls_per_s], offer_p99_ms_each: [.[].offer_p99_ms],
     server_cpu_pct: ([.[].target_cpu_pct // empty] | median), gen_cpu_pct: ([.[].gen_cpu_pct] | median),
     server_cpu_us_per_call: ([.[] | select(.target_cpu_pct != null and .calls_per_s > 0)
                               | .target_cpu_pct / 100 / .calls_per_s * 1e6] | median | if . then round else . end)}' "$results")
echo "$summary" | tee -a "$results"
echo "$summary" | jq -s -c '
  group_by([.delete_delay_s, .outstanding])[]
  | (map(select(.target == "latchkey")) | first) as $l
  | (map(select(.target | startswith("rtpengine"))) | max_by(.calls_per_s)) as $r
  | select($l != null and $r != null)
  | {goal: "ng", delete_delay_s: $l.delete_delay_s, outstanding: $l.outstanding, anchor: $r.target,
     latchkey_over_rtpengine: ($l.calls_per_s / $r.calls_per_s * 100 | round / 100),
     latchkey_worst_command_p99_ms: ([$l.offer_p99_ms, $l.answer_p99_ms, $l.delete_p99_ms] | max),
     met: (if $l.outstanding == 8 and $l.delete_delay_s == 0
           then ($l.calls_per_s >= 3 * $r.calls_per_s and ([$l.offer_p99_ms, $l.answer_p99_ms, $l.delete_p99_ms] | max) < 2)
           else null end)}' | tee -a "$results"
{
  echo
  printf '%-6s %-4s %-14s %5s %10s %9s %9s %9s %8s %6s %9s %6s\n' delay out target runs calls/s offer_p50 offer_p99 call_p99 failures srvCPU us/call genCPU
  echo "$summary" | jq -r '[.delete_delay_s, .outstanding, .target, .runs, .calls_per_s, .offer_p50_ms, .offer_p99_ms, .call_p99_ms, .failures, .server_cpu_pct, .server_cpu_us_per_call, .gen_cpu_pct] | @tsv' |
    while IFS=$'\t' read -r d o t r c p50 p99 cp99 f s u g; do
      printf '%-6s %-4s %-14s %5s %10.0f %9.3f %9.3f %9.3f %8s %6s %9s %6s\n' "${d}s" "$o" "$t" "$r" "$c" "$p50" "$p99" "$cp99" "$f" "$s" "$u" "$g"
    done
  echo "bench-ng: results in $results, logs in $logs" 
} >&2
