#!/usr/bin/env bash
# Builds and runs latchkey-control and one latchkey-relay on loopback with the embedded in-memory
# store, prints what to try, and stops both on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh default --target latchkey-control latchkey-relay latchkeyctl
bin=build
logs=$(mktemp -d /tmp/latchkey-local.XXXXXX)

"$bin/services/control/latchkey-control" --listen=127.0.0.1:7400 --metrics_listen=127.0.0.1:9400 \
  >"$logs/control.log" 2>&1 &
control_pid=$!
"$bin/media-relay/latchkey-relay" --control=127.0.0.1:7400 --listen=127.0.0.1:7410 \
  --metrics_listen=127.0.0.1:9410 --worker_id=relay-local --media_ip=127.0.0.1 \
  --port_min=30000 --port_max=30999 >"$logs/relay.log" 2>&1 &
relay_pid=$!
cleanup() {
  kill -TERM "$relay_pid" "$control_pid" 2>/dev/null || true
  wait "$relay_pid" "$control_pid" 2>/dev/null || true
  echo "stopped; logs in $logs"
}
trap cleanup EXIT INT TERM

ctl="$bin/services/latchkeyctl/latchkeyctl"
for _ in $(seq 1 100); do
  if "$ctl" workers list 2>/dev/null | grep -q relay-local; then break; fi
  if ! kill -0 "$control_pid" 2>/dev/null || ! kill -0 "$relay_pid" 2>/dev/null; then
    echo "a server exited; see $logs" >&2
    cat "$logs"/*.log >&2
    exit 1
  fi
  sleep 0.1
done

cat <<MSG
Latchkey is running on loopback (logs: $logs).
  control  gRPC 127.0.0.1:7400   metrics http://127.0.0.1:9400/metrics
  relay    gRPC 127.0.0.1:7410   metrics http://127.0.0.1:9410/metrics   media ports 30000-30999

Try, in another terminal:
  $ctl workers list
  $ctl register --aor=sip:alice@example.com --contact='<sip:alice@192.168.1.20:5060>' \\
      --source=203.0.113.7:41234 --registrar=127.0.0.1:5060
  $ctl bindings list
  $ctl demo-call
  $ctl watch sessions
  $ctl watch bindings        # keepalive results (run as root: OPTIONS from the registrar address)
  turnutils_stunclient 127.0.0.1   # the relay's STUN responder on UDP 3478
  curl -s http://127.0.0.1:9400/metrics | grep ^latchkey_

Ctrl-C stops both.
MSG
wait "$control_pid" "$relay_pid"
