#!/usr/bin/env bash
# Keepalive scale: one latchkey-relay (pinned to core 1) keeps N bindings alive at an interval; the
# benchmark (core 0) loads them over SetKeepalives and answers every OPTIONS from loopback. Prints
# one JSON object per mode (also saved under build/bench/).
#   scripts/bench-keepalive.sh [--modes="own_socket registrar_source"] [-- keepalive_bench flags]
#   e.g. scripts/bench-keepalive.sh -- --bindings=1000000 --interval=30s --duration=60s
set -euo pipefail
cd "$(dirname "$0")/.."
modes="own_socket registrar_source"
while (($#)); do
  case "$1" in
    --modes=*) modes="${1#--modes=}"; shift ;;
    --) shift; break ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
scripts/build.sh default --target latchkey-relay keepalive_bench >/dev/null
relay_cpu=1; load_cpu=0
[ "$(nproc)" -ge 2 ] || { relay_cpu=0; echo "warning: one core, relay and load share it" >&2; }
out=build/bench; mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
echo "{\"bench\":\"keepalive\",\"date\":\"$stamp\",\"cpus\":$(nproc),\"relay_cpu\":$relay_cpu,\"load_cpu\":$load_cpu,\"git\":\"$(git rev-parse --short HEAD)\"}" | tee "$out/keepalive-$stamp.jsonl"
relay_pid=""
trap '[ -n "$relay_pid" ] && kill "$relay_pid" 2>/dev/null; wait 2>/dev/null || true' EXIT
for mode in $modes; do
  if [ "$mode" = registrar_source ] && [ "$(id -u)" -ne 0 ]; then
    echo "{\"mode\":\"$mode\",\"skipped\":\"needs root (raw sockets)\"}" | tee -a "$out/keepalive-$stamp.jsonl"
    continue
  fi
  # No control: the relay keeps retrying its registration, which does not touch keepalives.
  taskset -c "$relay_cpu" build/media-relay/latchkey-relay --control=127.0.0.1:1 \
    --listen=127.0.0.1:7610 --metrics_listen=127.0.0.1:9610 --worker_id=bench-keepalive --port_min=20000 \
    --port_max=20099 --stun_listen=off --keepalive_mode="$mode" --keepalive_source_ips=127.0.0.1 \
    --log_level=error >"$out/keepalive-$stamp-$mode.log" 2>&1 &
  relay_pid=$!
  sleep 1
  result=$(timeout 900 taskset -c "$load_cpu" build/tests/benchmark/keepalive_bench --relay=127.0.0.1:7610 \
    --metrics=127.0.0.1:9610 --relay_pid=$relay_pid "$@")
  echo "{\"mode\":\"$mode\",${result#\{}" | tee -a "$out/keepalive-$stamp.jsonl"
  kill "$relay_pid"; wait "$relay_pid" 2>/dev/null || true; relay_pid=""
done
echo "bench-keepalive: results in $out/keepalive-$stamp.jsonl" >&2
