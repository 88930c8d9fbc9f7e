# Shared by the tests/deploy shell tests: a scratch directory, servers on loopback that are stopped
# on any exit, and waiting with a deadline. Source it; set LATCHKEY_{CONTROL,RELAY,CTL}_BIN first.
set -euo pipefail
# shellcheck source=../shell_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../shell_lib.sh"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-deploy.XXXXXX")
pids=()
cleanup_paths=() # removed on exit, with $scratch
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if ((rc != 0)); then
    for log in "$scratch"/*.log; do
      [[ -f $log ]] || continue
      echo "----- $(basename "$log") (last 30 lines)" >&2
      tail -n 30 "$log" >&2
    done
  fi
  rm -rf "$scratch" "${cleanup_paths[@]}"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# Servers die with this script even when it is killed outright (a CTest timeout sends SIGKILL, which
# no trap sees): setpriv gives them a parent-death signal.
run_bg() {
  setpriv --pdeathsig KILL -- "$@" &
  pids+=($!)
}

# The value of key=VALUE on the "ready" line a server logs.
logged() {
  local log=$1 key=$2
  grep -m1 'msg="latchkey-[a-z]* ready"' "$log" | grep -o "$key=[^ ]*" | cut -d= -f2
}

# start_control [FLAGS...]: control on loopback with kernel-chosen ports; sets control_grpc and
# control_metrics.
start_control() {
  run_bg "$LATCHKEY_CONTROL_BIN" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 "$@" >"$scratch/control.log" 2>&1
  wait_for 20 "control ready" grep -q 'latchkey-control ready' "$scratch/control.log"
  control_grpc=$(logged "$scratch/control.log" grpc_port)
  control_metrics=$(logged "$scratch/control.log" metrics_port)
}

# start_relay WORKER_ID [FLAGS...]: a relay registered with that control, media on loopback only;
# sets relay_pid, relay_grpc and relay_metrics.
start_relay() {
  local id=$1
  shift
  # A random 200-port range, so that parallel tests rarely share one.
  local port_min=$((40000 + 2 * (RANDOM % 9000)))
  run_bg "$LATCHKEY_RELAY_BIN" --control="127.0.0.1:$control_grpc" --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 \
    --worker_id="$id" --media_ip=127.0.0.1 --port_min="$port_min" --port_max=$((port_min + 199)) --threads=1 \
    "$@" >"$scratch/relay.log" 2>&1
  relay_pid=${pids[-1]}
  wait_for 20 "relay ready" grep -q 'latchkey-relay ready' "$scratch/relay.log"
  relay_grpc=$(logged "$scratch/relay.log" grpc_port)
  relay_metrics=$(logged "$scratch/relay.log" metrics_port)
  wait_for 20 "relay $id registered" worker_ready "$id"
}

ctl() {
  "$LATCHKEY_CTL_BIN" --server="127.0.0.1:$control_grpc" "$@"
}

worker_ready() {
  ctl workers list | grep "$1" | grep -i ready >/dev/null
}

# A TCP port free right now on loopback (for servers that cannot report a kernel-chosen one).
free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
