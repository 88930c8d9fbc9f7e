#!/usr/bin/env bash
# Builds and runs latchkey-control and one latchkey-relay on loopback with the embedded in-memory
# store and mutual TLS on every gRPC hop (a throw-away CA made with openssl, scripts/pki.sh), prints
# what to try, and stops both on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh default --target latchkey-control latchkey-relay latchkeyctl
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

# shellcheck disable=SC2046 # tls prints three flags without spaces in them
"$bin/services/control/latchkey-control" --listen=127.0.0.1:7400 --worker_listen=127.0.0.1:7401 \
  --metrics_listen=127.0.0.1:9400 $(tls control-control) >"$logs/control.log" 2>&1 &
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
