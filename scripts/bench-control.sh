#!/usr/bin/env bash
# Control-plane benchmark: latchkey-control + one latchkey-relay pinned to one core, the load
# generator to the other, over loopback gRPC: each workload in plaintext and over mutual TLS, side by
# side in one run. Every measured run gets a freshly started control+relay pair (so that what one run
# leaves behind - bindings, sessions, their sweeps - cannot slow the next), and with --repeat=N each
# workload runs N times per transport in alternating order (plaintext first, then mTLS first, ...);
# the summary gives the median of the repetitions. Prints one JSON object per line (also saved under
# build/bench/). The empty RPC (grpc.health.v1 Check on the same server) is the transport's ceiling;
# new_channel is what a new client pays to connect (TCP + TLS handshake).
#   scripts/bench-control.sh [--repeat=3] [--workloads=allocate_binding,...] [--duration=5s] [--clients=1,4,16]
# (other flags go to control_bench)
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=1
workloads="empty_rpc allocate_binding session_call new_channel"
bench_flags=()
for arg in "$@"; do
  case "$arg" in
    --repeat=*) repeat=${arg#*=} ;;
    --workloads=*) workloads=${arg#*=}; workloads=${workloads//,/ } ;;
    *) bench_flags+=("$arg") ;;
  esac
done
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
stop_pair() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; pids=(); }
trap 'stop_pair; rm -rf "$pki"' EXIT
# start_pair TRANSPORT: control and a relay on the server core; waits until control answers health.
start_pair() {
  local transport=$1 control_tls="" relay_tls="" client_tls=""
  if [ "$transport" = mtls ]; then
    control_tls=$(tls control-control); relay_tls=$(tls worker-bench-relay); client_tls=$(tls pbx-bench)
  fi
  # shellcheck disable=SC2086
  taskset -c "$server_cpu" build/services/control/latchkey-control --listen=127.0.0.1:7500 \
    --worker_listen=127.0.0.1:7501 --metrics_listen=127.0.0.1:9500 --log_level=warning $control_tls \
    >>"$out/control-$transport-$stamp.log" 2>&1 &
  pids+=($!)
  control_pid=$!
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
# run TRANSPORT WORKLOAD ROUND: one measured run against a fresh pair.
run() {
  start_pair "$1"
  taskset -c "$load_cpu" build/tests/benchmark/control_bench --server=127.0.0.1:7500 "${client_flags[@]}" \
    --workloads="$2" "${bench_flags[@]}" | jq -c --argjson round "$3" '. + {round: $round}' | tee -a "$results"
  stop_pair
}

echo "{\"bench\":\"control\",\"date\":\"$stamp\",\"cpus\":$(nproc),\"server_cpu\":$server_cpu,\"load_cpu\":$load_cpu,\"repeat\":$repeat}" | tee "$results"
for round in $(seq "$repeat"); do
  for workload in $workloads; do
    if [ $((round % 2)) -eq 1 ]; then order="plaintext mtls"; else order="mtls plaintext"; fi
    for transport in $order; do run "$transport" "$workload" "$round"; done
  done
done
start_pair plaintext
taskset -c "$load_cpu" build/tests/benchmark/control_bench --server=127.0.0.1:7500 --workloads=binding_memory \
  --server_pid="$control_pid" "${bench_flags[@]}" | tee -a "$results"
stop_pair

# Summary: per workload and client count, the median rps of each transport and mTLS / plaintext.
jq -s -r '
  def median: sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  [.[] | select(.rps != null)] | group_by([.workload, .clients])[]
  | {workload: .[0].workload, clients: .[0].clients,
     plain: ([.[] | select(.transport == "plaintext") | .rps] | if length > 0 then median else null end),
     mtls: ([.[] | select(.transport == "mtls") | .rps] | if length > 0 then median else null end),
     plain_p99: ([.[] | select(.transport == "plaintext") | .p99_ms] | if length > 0 then median else null end),
     mtls_p99: ([.[] | select(.transport == "mtls") | .p99_ms] | if length > 0 then median else null end)}
  | {summary: .workload, clients, plaintext_rps: .plain, mtls_rps: .mtls,
     mtls_pct: (if .plain and .mtls then (.mtls / .plain * 100 | floor) else null end),
     plaintext_p99_ms: .plain_p99, mtls_p99_ms: .mtls_p99} | tojson' "$results" | tee -a "$results"
