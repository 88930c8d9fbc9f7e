#!/usr/bin/env bash
# Control-plane benchmark: latchkey-control + one latchkey-relay pinned to one core, the load
# generator to the other, over loopback gRPC. Prints one JSON object per line (also saved under
# build/bench/). The empty RPC (grpc.health.v1 Check on the same server) is the transport's ceiling.
#   scripts/bench-control.sh [--duration=5s] [--clients=1,4,16]   (flags go to control_bench)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh default --target latchkey-control latchkey-relay control_bench >/dev/null
command -v taskset >/dev/null || { echo "taskset (util-linux) is required" >&2; exit 1; }
server_cpu=1; load_cpu=0
[ "$(nproc)" -ge 2 ] || { server_cpu=0; echo "warning: one core, server and load share it" >&2; }

out=build/bench; mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
grpc_port=7500; metrics_port=9500
taskset -c "$server_cpu" build/services/control/latchkey-control --listen=127.0.0.1:$grpc_port \
  --metrics_listen=127.0.0.1:$metrics_port --log_level=warning >"$out/control-$stamp.log" 2>&1 &
control_pid=$!
taskset -c "$server_cpu" build/media-relay/latchkey-relay --control=127.0.0.1:$grpc_port \
  --listen=127.0.0.1:7510 --metrics_listen=127.0.0.1:9510 --worker_id=bench-relay \
  --port_min=20000 --port_max=59999 --port_quarantine=1s --max_sessions=100000 --log_level=warning \
  >"$out/relay-$stamp.log" 2>&1 &
relay_pid=$!
trap 'kill $relay_pid $control_pid 2>/dev/null; wait 2>/dev/null || true' EXIT
sleep 2

echo "{\"bench\":\"control\",\"date\":\"$stamp\",\"cpus\":$(nproc),\"server_cpu\":$server_cpu,\"load_cpu\":$load_cpu}" | tee "$out/control-$stamp.jsonl"
taskset -c "$load_cpu" build/tests/benchmark/control_bench --server=127.0.0.1:$grpc_port \
  --workloads=empty_rpc,allocate_binding,session_call,binding_memory --server_pid=$control_pid "$@" \
  | tee -a "$out/control-$stamp.jsonl"
