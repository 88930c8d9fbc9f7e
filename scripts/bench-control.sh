#!/usr/bin/env bash
# Control-plane benchmark: latchkey-control + one latchkey-relay pinned to one core, the load
# generator to the other, over loopback gRPC: each workload in plaintext and over mutual TLS, side by
# side in one run (two control+relay pairs, the idle one costs nothing). Prints one JSON object per
# line (also saved under build/bench/). The empty RPC (grpc.health.v1 Check on the same server) is
# the transport's ceiling; new_channel is what a new client pays to connect (TCP + TLS handshake).
#   scripts/bench-control.sh [--duration=5s] [--clients=1,4,16]   (flags go to control_bench)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh default --target latchkey-control latchkey-relay control_bench >/dev/null
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }
server_cpu=1; load_cpu=0
[ "$(nproc)" -ge 2 ] || { server_cpu=0; echo "warning: one core, server and load share it" >&2; }

out=build/bench; mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
pki=$(mktemp -d /tmp/latchkey-bench-pki.XXXXXX)
scripts/pki.sh "$pki" init >/dev/null
for identity in "control control" "worker bench-relay" "worker bench-relay-tls" "pbx bench"; do
  # shellcheck disable=SC2086 # two words: ROLE NAME
  scripts/pki.sh "$pki" issue $identity >/dev/null
done
tls() { echo "--tls_cert=$pki/$1.crt --tls_key=$pki/$1.key --tls_ca=$pki/ca.crt"; }

pids=()
# start_pair NAME GRPC_PORT WORKER_PORT RELAY_PORT [TLS]: control and a relay, both on the server core.
start_pair() {
  local name=$1 grpc=$2 worker=$3 relay=$4 secure=${5:-}
  local control_tls="" relay_tls=""
  if [ -n "$secure" ]; then control_tls=$(tls control-control); relay_tls=$(tls "worker-bench-relay-tls"); fi
  # shellcheck disable=SC2086
  taskset -c "$server_cpu" build/services/control/latchkey-control --listen=127.0.0.1:$grpc \
    --worker_listen=127.0.0.1:$worker --metrics_listen=127.0.0.1:$((grpc + 2000)) --log_level=warning $control_tls \
    >"$out/control-$name-$stamp.log" 2>&1 &
  pids+=($!)
  control_pid=$!
  # shellcheck disable=SC2086
  taskset -c "$server_cpu" build/media-relay/latchkey-relay --control=127.0.0.1:$worker \
    --listen=127.0.0.1:$relay --metrics_listen=127.0.0.1:$((relay + 2000)) \
    --worker_id=bench-relay${secure:+-tls} --port_min=$6 --port_max=$7 --port_quarantine=1s --max_sessions=100000 \
    --keepalive_mode=off --log_level=warning $relay_tls >"$out/relay-$name-$stamp.log" 2>&1 &
  pids+=($!)
}
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$pki"' EXIT
start_pair plaintext 7500 7501 7510 "" 20000 39999
plain_control=$control_pid
start_pair mtls 7600 7601 7610 tls 40000 59999
sleep 2

echo "{\"bench\":\"control\",\"date\":\"$stamp\",\"cpus\":$(nproc),\"server_cpu\":$server_cpu,\"load_cpu\":$load_cpu}" | tee "$out/control-$stamp.jsonl"
# Workload by workload, plaintext then mTLS; binding_memory last, so that the 100,000 bindings it
# leaves (and their sweeps) do not share the server core with a measured run.
for workload in empty_rpc allocate_binding session_call new_channel; do
  taskset -c "$load_cpu" build/tests/benchmark/control_bench --server=127.0.0.1:7500 --workloads=$workload "$@" \
    | tee -a "$out/control-$stamp.jsonl"
  # shellcheck disable=SC2046
  taskset -c "$load_cpu" build/tests/benchmark/control_bench --server=127.0.0.1:7600 $(tls pbx-bench) \
    --workloads=$workload "$@" | tee -a "$out/control-$stamp.jsonl"
done
taskset -c "$load_cpu" build/tests/benchmark/control_bench --server=127.0.0.1:7500 --workloads=binding_memory \
  --server_pid="$plain_control" "$@" | tee -a "$out/control-$stamp.jsonl"
