#!/usr/bin/env bash
# Control-plane benchmark: latchkey-control + one latchkey-relay pinned to one core, the load
# generator to the other, over loopback gRPC: each workload in plaintext and over mutual TLS, side by
# side in one run. Every measured run gets a freshly started control+relay pair (so that what one run
# leaves behind - bindings, sessions, their sweeps - cannot slow the next), and with --repeat=N each
# workload runs N times per transport in alternating order (plaintext first, then mTLS first, ...);
# the summary gives the median of the repetitions. Prints one JSON object per line (also saved under
# build/bench/). The empty RPC (grpc.health.v1 Check on the same server) is the transport's ceiling;
# new_channel is what a new client pays to connect (TCP + TLS handshake).
# With --stores=memory,redis each workload also runs with bindings in a redis-server (pinned to the
# server core too, no persistence unless --redis_args say so); its CPU per call is reported. With
# --replicas=1,3 the Redis runs are repeated with that many control replicas on the one Redis (all on
# the server core; the load spreads its calls over them round-robin).
#   scripts/bench-control.sh [--repeat=3] [--workloads=allocate_binding,...] [--transports=plaintext,mtls]
#                            [--stores=memory,redis] [--replicas=1,3] [--redis_args="--appendonly yes"]
#                            [--duration=5s] [--clients=1,4,16]
# (other flags go to control_bench)
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=1
workloads="empty_rpc allocate_binding session_call new_channel"
transports="plaintext mtls"
stores="memory"
replicas="1"
redis_args=""
bench_flags=()
for arg in "$@"; do
  case "$arg" in
    --repeat=*) repeat=${arg#*=} ;;
    --workloads=*) workloads=${arg#*=}; workloads=${workloads//,/ } ;;
    --transports=*) transports=${arg#*=}; transports=${transports//,/ } ;;
    --stores=*) stores=${arg#*=}; stores=${stores//,/ } ;;
    --replicas=*) replicas=${arg#*=}; replicas=${replicas//,/ } ;;
    --redis_args=*) redis_args=${arg#*=} ;;
    *) bench_flags+=("$arg") ;;
  esac
done
if [[ " $stores " == *" redis "* ]] && ! command -v redis-server >/dev/null; then
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
scripts/build.sh default --target latchkey-control latchkey-relay control_bench >/dev/null
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }
command -v jq >/dev/null || { apt-get update -qq && apt-get install -y -qq jq >/dev/null; }
server_cpu=1; load_cpu=0
[ "$(nproc)" -ge 2 ] || { server_cpu=0; echo "warning: one core, server and load share it" >&2; }

out=build/bench; mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results="$out/control-$stamp.jsonl"
pki=$(mktemp -d /tmp/latchkey-bench-pki.XXXXXX)
scripts/pki.sh "$pki" init >/dev/null
for identity in "control control" "worker bench-relay" "pbx bench"; do
  # shellcheck disable=SC2086 # two words: ROLE NAME
  scripts/pki.sh "$pki" issue $identity >/dev/null
done
tls() { echo "--tls_cert=$pki/$1.crt --tls_key=$pki/$1.key --tls_ca=$pki/ca.crt"; }

pids=()
redis_pid=""
redis_dir=""
stop_pair() {
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=()
  redis_pid=""
  [ -z "$redis_dir" ] || rm -rf "$redis_dir"
  redis_dir=""
}
trap 'stop_pair; rm -rf "$pki"' EXIT
# CPU ticks (user + system) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# start_pair TRANSPORT STORE [REPLICAS]: (redis-server,) control (REPLICAS of them, Redis only) and a
# relay on the server core; waits until the relay has registered. Sets `target` for the load.
start_pair() {
  local transport=$1 store=${2:-memory} count=${3:-1} control_tls="" relay_tls="" client_tls="" store_flag="--store=memory"
  if [ "$transport" = mtls ]; then
    control_tls=$(tls control-control); relay_tls=$(tls worker-bench-relay); client_tls=$(tls pbx-bench)
  fi
  if [ "$store" = redis ]; then
    redis_dir=$(mktemp -d /tmp/latchkey-bench-redis.XXXXXX)
    # shellcheck disable=SC2086 # extra server arguments, split on purpose
    taskset -c "$server_cpu" redis-server --port 7520 --bind 127.0.0.1 --save "" --appendonly no \
      --dir "$redis_dir" $redis_args >>"$out/redis-$stamp.log" 2>&1 &
    pids+=($!)
    redis_pid=$!
    for _ in $(seq 100); do redis-cli -p 7520 ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
    store_flag="--store=redis://127.0.0.1:7520"
  fi
  target="ipv4:"
  local i separator=""
  for ((i = 0; i < count; i++)); do
    # shellcheck disable=SC2086
    taskset -c "$server_cpu" build/services/control/latchkey-control --listen=127.0.0.1:$((7500 + 2 * i)) \
      --worker_listen=127.0.0.1:$((7501 + 2 * i)) --metrics_listen=127.0.0.1:$((9500 + 2 * i)) \
      --log_level=warning $control_tls "$store_flag" >>"$out/control-$transport-$stamp.log" 2>&1 &
    pids+=($!)
    [ "$i" -gt 0 ] || control_pid=$!
    target+="${separator}127.0.0.1:$((7500 + 2 * i))"
    separator=","
  done
  # shellcheck disable=SC2086
  taskset -c "$server_cpu" build/media-relay/latchkey-relay --control=127.0.0.1:7501 \
    --listen=127.0.0.1:7510 --metrics_listen=127.0.0.1:9510 \
    --worker_id=bench-relay --port_min=20000 --port_max=59999 --port_quarantine=1s --max_sessions=100000 \
    --keepalive_mode=off --log_level=warning $relay_tls >>"$out/relay-$transport-$stamp.log" 2>&1 &
  pids+=($!)
  # Ready when the relay has registered: a session call needs it (bounded: 10 s).
  local _
  for _ in $(seq 100); do
    curl -sf http://127.0.0.1:9500/metrics 2>/dev/null | grep -q '^latchkey_workers{state="ready"} 1' && break
    sleep 0.1
  done
  # shellcheck disable=SC2206
  client_flags=($client_tls)
}
# run TRANSPORT STORE WORKLOAD ROUND REPLICAS: one measured run against a fresh pair. With Redis,
# each line also carries Redis's CPU per call.
run() {
  start_pair "$1" "$2" "$5"
  local before=0
  [ -z "$redis_pid" ] || before=$(cpu_ticks "$redis_pid")
  taskset -c "$load_cpu" build/tests/benchmark/control_bench --server="$target" "${client_flags[@]}" \
    --workloads="$3" "${bench_flags[@]}" >"$out/run.tmp"
  local ticks=0
  [ -z "$redis_pid" ] || ticks=$(( $(cpu_ticks "$redis_pid") - before ))
  # Redis's CPU is read around the whole invocation (every client count and its warm-up), so it is
  # spread over all of the invocation's calls: an upper bound, the same on each of its lines.
  jq -c -s --argjson round "$4" --arg store "$2" --argjson replicas "$5" --argjson ticks "$ticks" \
    --argjson hz "$(getconf CLK_TCK)" \
    '(map(.calls // 0) | add) as $calls | .[]
     | . + {round: $round, store: $store, replicas: $replicas}
     + (if $ticks > 0 and $calls > 0 then {redis_cpu_us_per_call: ($ticks / $hz * 1e6 / $calls * 100 | round / 100)} else {} end)' \
    "$out/run.tmp" | tee -a "$results"
  stop_pair
}

echo "{\"bench\":\"control\",\"date\":\"$stamp\",\"cpus\":$(nproc),\"server_cpu\":$server_cpu,\"load_cpu\":$load_cpu,\"repeat\":$repeat}" | tee "$results"
# Every (transport, store) pair per workload, in an order that alternates between rounds.
combos=()
for transport in $transports; do
  for store in $stores; do
    if [ "$store" = redis ]; then
      for n in $replicas; do combos+=("$transport/$store/$n"); done
    else
      combos+=("$transport/$store/1")
    fi
  done
done
for round in $(seq "$repeat"); do
  for workload in $workloads; do
    order=("${combos[@]}")
    if [ $((round % 2)) -eq 0 ]; then
      order=()
      for ((i = ${#combos[@]} - 1; i >= 0; i--)); do order+=("${combos[$i]}"); done
    fi
    for combo in "${order[@]}"; do
      IFS=/ read -r transport store n <<<"$combo"
      run "$transport" "$store" "$workload" "$round" "$n"
    done
  done
done
# Memory per binding: control's RSS growth, or Redis's when bindings live there.
for store in $stores; do
  start_pair plaintext "$store"
  pid=$control_pid
  [ -z "$redis_pid" ] || pid=$redis_pid
  taskset -c "$load_cpu" build/tests/benchmark/control_bench --server="$target" --workloads=binding_memory \
    --server_pid="$pid" "${bench_flags[@]}" | jq -c --arg store "$store" '. + {store: $store}' | tee -a "$results"
  stop_pair
done

# Summary: per workload and client count, the median rps of each transport and mTLS / plaintext.
jq -s -r '
  def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  [.[] | select(.rps != null)] | group_by([.workload, .store, (.replicas // 1), .clients])[]
  | {workload: .[0].workload, store: .[0].store, replicas: (.[0].replicas // 1), clients: .[0].clients,
     plain: ([.[] | select(.transport == "plaintext") | .rps] | if length > 0 then median else null end),
     mtls: ([.[] | select(.transport == "mtls") | .rps] | if length > 0 then median else null end),
     plain_p99: ([.[] | select(.transport == "plaintext") | .p99_ms] | if length > 0 then median else null end),
     mtls_p99: ([.[] | select(.transport == "mtls") | .p99_ms] | if length > 0 then median else null end),
     redis_cpu: ([.[] | .redis_cpu_us_per_call // empty] | if length > 0 then median else null end)}
  | {summary: .workload, store, replicas, clients, plaintext_rps: .plain, mtls_rps: .mtls,
     mtls_pct: (if .plain and .mtls then (.mtls / .plain * 100 | floor) else null end),
     plaintext_p99_ms: .plain_p99, mtls_p99_ms: .mtls_p99, redis_cpu_us_per_call: .redis_cpu} | tojson' "$results" | tee -a "$results"
