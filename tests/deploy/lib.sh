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

# start_redis_group RENDERED: overlays/ha's Redis on loopback, as its StatefulSet runs it: each pod's
# server and sentinel containers run the image's entrypoint (deploy/docker/redis-entrypoint.sh, which
# deploy/Dockerfile.redis copies to the command's path) with the container's env, the rendered
# ConfigMap and an empty data volume laid out as the kubelet would (validate.js mount-pod), as the
# pod's uid when this runs as root; only LK_REDIS_NODES (loopback ports) and the listen address
# differ. Waits until every sentinel names one primary and it has its replicas. Sets redis_nodes,
# redis_ports and redis_sentinel_ports (arrays, by pod), redis_server_pid and redis_sentinel_pid
# (arrays), redis_master_name and redis_store (control's --store for this group).
start_redis_group() {
  local rendered=$1 i var
  local here_lib
  here_lib=$(dirname "${BASH_SOURCE[0]}")
  local -a pod_env
  mapfile -t pod_env < <(node "$here_lib/validate.js" env "$rendered" StatefulSet/latchkey-redis redis)
  local -A env_of=()
  for var in "${pod_env[@]}"; do env_of[${var%%=*}]=${var#*=}; done
  local count
  count=$(wc -w <<<"${env_of[LK_REDIS_NODES]:?the Redis StatefulSet sets no LK_REDIS_NODES}")
  redis_master_name=${env_of[LK_REDIS_MASTER_NAME]:-latchkey}
  redis_ports=() redis_sentinel_ports=() redis_server_pid=() redis_sentinel_pid=()
  local nodes=() sentinels=()
  for ((i = 0; i < count; i++)); do
    redis_ports+=("$(free_port)")
    redis_sentinel_ports+=("$(free_port)")
    nodes+=("127.0.0.1:${redis_ports[i]}:${redis_sentinel_ports[i]}")
    sentinels+=("127.0.0.1:${redis_sentinel_ports[i]}")
  done
  redis_nodes=${nodes[*]}
  redis_store="redis+sentinel://$(
    IFS=,
    echo "${sentinels[*]}"
  )/$redis_master_name"
  : >"$scratch/no-secrets.yaml"
  local uid gid _
  read -r uid gid _ < <(node "$here_lib/validate.js" security-context "$rendered" StatefulSet/latchkey-redis)
  redis_as=()
  if (($(id -u) == 0)); then
    chmod 711 "$scratch"
    redis_as=(setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs --)
  fi
  for ((i = 0; i < count; i++)); do
    local root=$scratch/redis-pod-$i
    node "$here_lib/validate.js" mount-pod "$rendered" "$scratch/no-secrets.yaml" StatefulSet/latchkey-redis "$root" ||
      fail "the Redis pod's volumes do not lay out"
    if ((${#redis_as[@]})); then chown -R "$uid:$gid" "$root"; fi
    # NAME=VALUE lines (LK_REDIS_NODES has spaces).
    redis_pod_env[i]="LK_REDIS_NODES=$redis_nodes"$'\n'"LK_REDIS_SELF=$i"$'\n'"LK_REDIS_BIND=127.0.0.1"
    for var in "${pod_env[@]}"; do
      case ${var%%=*} in
        LK_REDIS_DIR | LK_REDIS_CONF_DIR) redis_pod_env[i]+=$'\n'"${var%%=*}=$root${var#*=}" ;;
        LK_REDIS_NODES) ;;
        *) redis_pod_env[i]+=$'\n'"$var" ;;
      esac
    done
    start_redis_node "$i" server
    start_redis_node "$i" sentinel
  done
  wait_for 60 "the Redis group: one primary named by every sentinel, with its replicas" redis_group_ready
}

# redis_entrypoint INDEX ARGS...: the entrypoint with pod INDEX's environment, in the foreground (as
# the kubelet runs a probe or a hook).
redis_entrypoint() {
  local -a e
  mapfile -t e <<<"${redis_pod_env[$1]}"
  env "${e[@]}" "$LATCHKEY_REPO/deploy/docker/redis-entrypoint.sh" "${@:2}"
}

# start_redis_node INDEX server|sentinel: (re)starts one container of pod INDEX.
start_redis_node() {
  local i=$1 what=$2
  local -a e
  mapfile -t e <<<"${redis_pod_env[i]}"
  # The uid first: a change of credentials clears the parent-death signal (run_bg's).
  "${redis_as[@]}" setpriv --pdeathsig KILL -- env "${e[@]}" "$LATCHKEY_REPO/deploy/docker/redis-entrypoint.sh" "$what" \
    >>"$scratch/redis-$i-$what.log" 2>&1 &
  pids+=($!)
  if [[ $what == server ]]; then redis_server_pid[i]=$!; else redis_sentinel_pid[i]=$!; fi
}

# redis_cli PORT ARGS...: one command to a loopback node, with a deadline.
redis_cli() {
  local port=$1
  shift
  timeout 3 redis-cli -h 127.0.0.1 -p "$port" "$@" 2>&1 | tr -d '\r'
}

# The primary's port as every sentinel names it; fails while they disagree or name none.
redis_primary() {
  local i answer="" first=""
  for i in "${!redis_sentinel_ports[@]}"; do
    answer=$(redis_cli "${redis_sentinel_ports[i]}" SENTINEL get-master-addr-by-name "$redis_master_name" | sed -n 2p)
    [[ $answer =~ ^[0-9]+$ ]] || return 1
    [[ -z $first || $answer == "$first" ]] || return 1
    first=$answer
  done
  echo "$first"
}

# One primary named by every sentinel, its replicas online, and every sentinel knowing the replicas
# and the other sentinels (a sentinel promotes only replicas it knows; it learns them from the
# primary's INFO every 10 s).
redis_group_ready() {
  local primary port others=$((${#redis_ports[@]} - 1))
  primary=$(redis_primary) || return 1
  [[ $(redis_cli "$primary" INFO replication | grep -c 'state=online') -eq $others ]] || return 1
  for port in "${redis_sentinel_ports[@]}"; do
    redis_cli "$port" SENTINEL MASTER "$redis_master_name" | awk -v n="$others" '
      NR % 2 == 1 { key = $0; next } { v[key] = $0 }
      END { exit !(v["num-slaves"] == n && v["num-other-sentinels"] == n) }' || return 1
  done
}

# The pod index of a loopback port.
redis_index_of() {
  local i
  for i in "${!redis_ports[@]}"; do if [[ ${redis_ports[i]} == "$1" ]]; then echo "$i"; fi; done
}
