#!/usr/bin/env bash
# Builds and runs latchkey-control and one latchkey-relay on loopback with the embedded in-memory
# store and mutual TLS on every gRPC hop (a throw-away CA made with openssl, scripts/pki.sh), prints
# what to try, and stops both on Ctrl-C.
#   scripts/run-local.sh          as above
#   scripts/run-local.sh --ha     the highly available layout instead: three Redis servers with
#                                 Sentinel (the Kubernetes entrypoint and configs), three control
#                                 replicas sharing them as their store, one relay
# LATCHKEY_SKIP_BUILD=1 runs what build/ holds without building first.
set -euo pipefail
cd "$(dirname "$0")/.."
ha=0
case ${1:-} in
  "") ;;
  --ha) ha=1 ;;
  *)
    echo "usage: $0 [--ha]" >&2
    exit 2
    ;;
esac
if [[ ${LATCHKEY_SKIP_BUILD:-0} != 1 ]]; then
  scripts/build.sh default --target latchkey-control latchkey-relay latchkeyctl
fi
bin=build
logs=$(mktemp -d /tmp/latchkey-local.XXXXXX)
pki=$logs/pki

# One certificate per identity: control, the relay (its name is its worker id), an operator for
# latchkeyctl, and a PBX (what a PBX's client would use).
scripts/pki.sh "$pki" init >/dev/null
for identity in "control control" "worker relay-local" "operator local" "pbx pbx-local"; do
  # shellcheck disable=SC2086 # two words: ROLE NAME
  scripts/pki.sh "$pki" issue $identity >/dev/null
done
tls() { echo "--tls_cert=$pki/$1.crt --tls_key=$pki/$1.key --tls_ca=$pki/ca.crt"; }

# --ha: three Redis nodes (a primary, two replicas, a sentinel each) run by the Kubernetes image's
# entrypoint with deploy/k8s/redis's configs, three control replicas on them as their store, one
# relay. A Redis process that dies is started again after 5 s, as the kubelet would restart its
# container, so that a killed primary can be seen rejoining as a replica.
run_ha() {
  local i
  for i in redis-server redis-sentinel redis-cli; do
    command -v "$i" >/dev/null || {
      echo "$i not found: run scripts/install-deps.sh" >&2
      exit 1
    }
  done
  local redis_nodes="127.0.0.1:6390:26390 127.0.0.1:6391:26391 127.0.0.1:6392:26392"
  local store="redis+sentinel://127.0.0.1:26390,127.0.0.1:26391,127.0.0.1:26392/latchkey"
  # Globals: the EXIT trap reads them.
  ha_supervisors=() ha_servers=()
  stopping=$logs/stopping
  # supervise NAME COMMAND...: runs COMMAND, and again 5 s after each exit, until stopping.
  supervise() {
    local name=$1
    shift
    while [[ ! -e $stopping ]]; do
      "$@" >>"$logs/$name.log" 2>&1 &
      echo $! >"$logs/$name.pid"
      wait $! || true
      [[ -e $stopping ]] && break
      echo "run-local: $name exited; starting it again in 5 s" >>"$logs/$name.log"
      sleep 5
    done
  }
  for i in 0 1 2; do
    mkdir -p "$logs/redis-$i"
    local -a env=(env LK_REDIS_NODES="$redis_nodes" LK_REDIS_SELF="$i" LK_REDIS_MASTER_NAME=latchkey LK_REDIS_QUORUM=2
      LK_REDIS_DIR="$logs/redis-$i" LK_REDIS_CONF_DIR="$PWD/deploy/k8s/redis" LK_REDIS_BIND=127.0.0.1)
    # (The supervisors' own stderr would only carry the shell's "Killed" notices.)
    supervise "redis-$i-server" "${env[@]}" deploy/docker/redis-entrypoint.sh server 2>/dev/null &
    ha_supervisors+=($!)
    supervise "redis-$i-sentinel" "${env[@]}" deploy/docker/redis-entrypoint.sh sentinel 2>/dev/null &
    ha_supervisors+=($!)
  done
  trap cleanup_ha EXIT
  trap 'exit 130' INT TERM

  # Ready when every sentinel names one primary, it has both replicas, and every sentinel knows them
  # (it promotes only replicas it knows).
  ha_ready() {
    local port primary=""
    for port in 26390 26391 26392; do
      local p
      p=$(redis-cli -p "$port" SENTINEL get-master-addr-by-name latchkey 2>/dev/null | sed -n 2p) || return 1
      [[ -n $p && (-z $primary || $p == "$primary") ]] || return 1
      primary=$p
      [[ $(redis-cli -p "$port" SENTINEL MASTER latchkey 2>/dev/null | sed -n '/^num-slaves$/{n;p}') == 2 ]] || return 1
    done
    [[ $(redis-cli -p "$primary" INFO replication 2>/dev/null | grep -c 'state=online') == 2 ]]
  }
  for i in $(seq 1 600); do
    if ha_ready; then break; fi
    if ((i == 600)); then
      echo "the Redis group did not come up; logs:" >&2
      tail -n 20 "$logs"/redis-*.log >&2
      exit 1
    fi
    sleep 0.1
  done

  for i in 0 1 2; do
    # shellcheck disable=SC2046 # tls prints three flags without spaces in them
    "$bin/services/control/latchkey-control" --listen="127.0.0.1:$((7400 + 2 * i))" --worker_listen="127.0.0.1:$((7401 + 2 * i))" \
      --metrics_listen="127.0.0.1:$((9400 + 2 * i))" --store="$store" $(tls control-control) >"$logs/control-$i.log" 2>&1 &
    ha_servers+=($!)
  done
  # The relay's --control is a gRPC target: listing the three worker ports, it registers with the first
  # that answers and moves to the next when that one goes away, as it would behind the Service.
  # shellcheck disable=SC2046
  "$bin/media-relay/latchkey-relay" --control=ipv4:127.0.0.1:7401,127.0.0.1:7403,127.0.0.1:7405 --listen=127.0.0.1:7410 \
    --metrics_listen=127.0.0.1:9410 --worker_id=relay-local --media_ip=127.0.0.1 \
    --port_min=30000 --port_max=30999 --keepalive_allow_loopback --keepalive_allow_private \
    $(tls worker-relay-local) >"$logs/relay.log" 2>&1 &
  ha_servers+=($!)

  local ctl
  ctl="$bin/services/latchkeyctl/latchkeyctl $(tls operator-local)"
  for i in $(seq 1 100); do
    if $ctl --server=127.0.0.1:7400 workers list 2>/dev/null | grep -q relay-local; then break; fi
    local pid
    for pid in "${ha_servers[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "a server exited; its log:" >&2
        tail -n 20 "$logs"/control-*.log "$logs/relay.log" >&2
        exit 1
      fi
    done
    sleep 0.1
  done
  local primary
  primary=$(redis-cli -p 26390 SENTINEL get-master-addr-by-name latchkey | sed -n 2p)

  cat <<MSG
Latchkey's highly available layout is running on loopback with mutual TLS (logs, Redis data and the
throw-away CA: $logs; all removed on exit).
  Redis     servers 127.0.0.1:6390 6391 6392, sentinels 26390 26391 26392 (group "latchkey");
            primary now: $primary. deploy/docker/redis-entrypoint.sh with deploy/k8s/redis's configs.
  control   3 replicas, store $store
              1: gRPC 127.0.0.1:7400 (PBX/operator API)  127.0.0.1:7401 (relays)  metrics :9400
              2: gRPC 127.0.0.1:7402                      127.0.0.1:7403            metrics :9402
              3: gRPC 127.0.0.1:7404                      127.0.0.1:7405            metrics :9404
  relay     gRPC 127.0.0.1:7410   metrics :9410   media ports 30000-30999
            --control=ipv4:127.0.0.1:7401,127.0.0.1:7403,127.0.0.1:7405 (the first that answers)

In another terminal:
  ctl="$ctl"
  \$ctl --server=127.0.0.1:7400 register --aor=sip:alice@example.com --contact='<sip:alice@192.168.1.20:5060>' \\
      --source=203.0.113.7:41234 --registrar=127.0.0.1:5060
  \$ctl --server=127.0.0.1:7402 bindings list        # replica 2 lists what replica 1 stored
  \$ctl --server=127.0.0.1:7404 workers list         # every replica knows the relay
  \$ctl --server=127.0.0.1:7402 demo-call
  \$ctl --server=ipv4:127.0.0.1:7400,127.0.0.1:7402,127.0.0.1:7404 watch bindings   # any replica

Failover:
  redis-cli -p 26390 sentinel get-master-addr-by-name latchkey    # the primary's port
  kill -9 \$(cat $logs/redis-N-server.pid)   # N = the primary's port - 6390
  watch -n 0.5 redis-cli -p 26390 sentinel get-master-addr-by-name latchkey
      # a replica is promoted within ~7 s (down-after-milliseconds 5000); meanwhile register answers
      # UNAVAILABLE. The killed server is started again after 5 s and rejoins as a replica:
  redis-cli -p 639N role
  env LK_REDIS_NODES="$redis_nodes" LK_REDIS_SELF=N \\
      LK_REDIS_DIR=$logs/redis-N deploy/docker/redis-entrypoint.sh failover
      # a planned failover from node N, the primary (what a Redis pod's preStop hook does)
  kill \$(pgrep -f 'latchkey-control --listen=127.0.0.1:7400')   # replica 1 gone: the relay and the
      # watch above move to another replica; the others answer as before

Ctrl-C stops everything.
MSG
  wait "${ha_servers[@]}"
}

# Stops the supervisors first (no restarts), then every process they and run_ha started, and removes
# the directory.
cleanup_ha() {
  touch "$stopping"
  kill -TERM "${ha_supervisors[@]}" 2>/dev/null || true
  local f pid left=()
  for f in "$logs"/*.pid; do left+=("$(cat "$f")"); done
  left+=("${ha_servers[@]}")
  kill -TERM "${left[@]}" 2>/dev/null || true
  # Up to 5 s to exit (zombies count as gone), then SIGKILL: the data goes anyway.
  local alive
  for _ in $(seq 1 50); do
    alive=0
    for pid in "${left[@]}"; do
      if [[ -e /proc/$pid ]] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then alive=1; fi
    done
    ((alive)) || break
    sleep 0.1
  done
  kill -KILL "${left[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$logs"
  echo "stopped; removed $logs"
}

if ((ha)); then
  run_ha
  exit
fi

# shellcheck disable=SC2046 # tls prints three flags without spaces in them
"$bin/services/control/latchkey-control" --listen=127.0.0.1:7400 --worker_listen=127.0.0.1:7401 \
  --metrics_listen=127.0.0.1:9400 --ng_listen=127.0.0.1:22222 $(tls control-control) >"$logs/control.log" 2>&1 &
control_pid=$!
# shellcheck disable=SC2046
"$bin/media-relay/latchkey-relay" --control=127.0.0.1:7401 --listen=127.0.0.1:7410 \
  --metrics_listen=127.0.0.1:9410 --worker_id=relay-local --media_ip=127.0.0.1 \
  --port_min=30000 --port_max=30999 --keepalive_allow_loopback --keepalive_allow_private \
  $(tls worker-relay-local) >"$logs/relay.log" 2>&1 &
relay_pid=$!
cleanup() {
  kill -TERM "$relay_pid" "$control_pid" 2>/dev/null || true
  wait "$relay_pid" "$control_pid" 2>/dev/null || true
  echo "stopped; logs and the throw-away CA in $logs"
}
trap cleanup EXIT INT TERM

ctl="$bin/services/latchkeyctl/latchkeyctl $(tls operator-local)"
for _ in $(seq 1 100); do
  if $ctl workers list 2>/dev/null | grep -q relay-local; then break; fi
  if ! kill -0 "$control_pid" 2>/dev/null || ! kill -0 "$relay_pid" 2>/dev/null; then
    echo "a server exited; see $logs" >&2
    cat "$logs"/*.log >&2
    exit 1
  fi
  sleep 0.1
done

cat <<MSG
Latchkey is running on loopback with mutual TLS (logs and the throw-away CA: $logs).
  control  gRPC 127.0.0.1:7400 (PBX/operator API)  127.0.0.1:7401 (relays)  metrics http://127.0.0.1:9400/metrics
           rtpengine ng protocol on udp 127.0.0.1:22222, for a Kamailio on this machine:
             modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:22222")   (docs/INTEGRATIONS.md)
  relay    gRPC 127.0.0.1:7410   metrics http://127.0.0.1:9410/metrics   media ports 30000-30999

latchkeyctl needs a certificate: the operator's is in the CA directory. In another terminal:
  ctl="$ctl"
  \$ctl workers list
  \$ctl register --aor=sip:alice@example.com --contact='<sip:alice@192.168.1.20:5060>' \\
      --source=203.0.113.7:41234 --registrar=127.0.0.1:5060
  \$ctl bindings list
  \$ctl demo-call
  \$ctl watch sessions
  \$ctl watch bindings        # keepalive results (run as root: OPTIONS from the registrar address)
  turnutils_stunclient 127.0.0.1   # the relay's STUN responder on UDP 3478
  curl -s http://127.0.0.1:9400/metrics | grep ^latchkey_

A PBX's identity: $pki/pbx-pbx-local.{crt,key} (it sees only its own bindings and calls).
More certificates: scripts/pki.sh $pki issue ROLE NAME   (ROLE: pbx, operator, worker, control)
Without a certificate every call is refused:
  $bin/services/latchkeyctl/latchkeyctl workers list

Ctrl-C stops both.
MSG
wait "$control_pid" "$relay_pid"
