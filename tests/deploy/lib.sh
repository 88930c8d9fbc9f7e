# Shared by the tests/deploy shell tests: a scratch directory, servers on loopback that are stopped
# on any exit, waiting with a deadline, and mutual TLS from a throw-away CA. Source it; set
# LATCHKEY_{CONTROL,RELAY,CTL}_BIN and LATCHKEY_REPO first.
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

# The value of key=VALUE on the "ready" line a server logs (" key=": grpc_port is not worker_grpc_port).
logged() {
  local log=$1 key=$2
  grep -m1 'msg="latchkey-[a-z]* ready"' "$log" | grep -o " $key=[^ ]*" | cut -d= -f2
}

# Mutual TLS on every hop, as deployed: a throw-away CA (scripts/pki.sh) in $scratch/pki and one
# certificate per identity, issued on first use.
pki=$scratch/pki
issue() {
  local role=$1 name=$2
  [[ -f $pki/ca.crt ]] || bash "${LATCHKEY_REPO:?}/scripts/pki.sh" "$pki" init >/dev/null
  [[ -f $pki/$role-$name.crt ]] || bash "$LATCHKEY_REPO/scripts/pki.sh" "$pki" issue "$role" "$name" >/dev/null
}
# tls_flags ROLE-NAME: the three flags of that identity.
tls_flags() {
  echo "--tls_cert=$pki/$1.crt --tls_key=$pki/$1.key --tls_ca=$pki/ca.crt"
}

# start_control [FLAGS...]: control on loopback with kernel-chosen ports and mutual TLS; sets
# control_grpc (PBX/operator API), control_workers (worker API) and control_metrics. The two gRPC
# listen addresses differ in host (127.0.0.1, 127.0.0.2), as control wants them distinct.
start_control() {
  issue control control
  # shellcheck disable=SC2046 # tls_flags prints three words without spaces
  run_bg "$LATCHKEY_CONTROL_BIN" --listen=127.0.0.1:0 --worker_listen=127.0.0.2:0 --metrics_listen=127.0.0.1:0 \
    $(tls_flags control-control) "$@" >"$scratch/control.log" 2>&1
  wait_for 20 "control ready" grep -q 'latchkey-control ready' "$scratch/control.log"
  control_grpc=$(logged "$scratch/control.log" grpc_port)
  control_workers=$(logged "$scratch/control.log" worker_grpc_port)
  control_metrics=$(logged "$scratch/control.log" metrics_port)
}

# start_relay WORKER_ID [FLAGS...]: a relay registered with that control (its certificate named after
# WORKER_ID), media on loopback only; sets relay_pid, relay_grpc and relay_metrics. Its RelayService
# and media are on 127.0.0.2: latchkeyctl's demo phones on 127.0.0.1 get ephemeral ports, which may
# fall in the relay's range, and the relay drops packets from its own address and range (loops).
start_relay() {
  local id=$1
  shift
  issue worker "$id"
  # A random 200-port range, so that parallel tests rarely share one.
  local port_min=$((40000 + 2 * (RANDOM % 9000)))
  # shellcheck disable=SC2046
  run_bg "$LATCHKEY_RELAY_BIN" --control="127.0.0.2:$control_workers" --listen=127.0.0.2:0 --metrics_listen=127.0.0.1:0 \
    --worker_id="$id" --media_ip=127.0.0.2 --port_min="$port_min" --port_max=$((port_min + 199)) --threads=1 \
    $(tls_flags "worker-$id") "$@" >"$scratch/relay.log" 2>&1
  relay_pid=${pids[-1]}
  wait_for 20 "relay ready" grep -q 'latchkey-relay ready' "$scratch/relay.log"
  relay_grpc=$(logged "$scratch/relay.log" grpc_port)
  relay_metrics=$(logged "$scratch/relay.log" metrics_port)
  wait_for 20 "relay $id registered" worker_ready "$id"
}

# latchkeyctl as an operator.
ctl() {
  issue operator deploy-tests
  # shellcheck disable=SC2046
  "$LATCHKEY_CTL_BIN" --server="127.0.0.1:$control_grpc" $(tls_flags operator-deploy-tests) "$@"
}

worker_ready() {
  ctl workers list | grep "$1" | grep -i ready >/dev/null
}

# A TCP port free right now on loopback (for servers that cannot report a kernel-chosen one).
free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
