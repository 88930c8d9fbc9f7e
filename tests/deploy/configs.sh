#!/usr/bin/env bash
# The ConfigMaps every overlay renders are configs the real binaries load: control and relay start
# with them (listen addresses moved to loopback, and the relay's control address with them) and
# report ready. An unknown field or a bad value would stop them with exit 2 before that.
here=$(dirname "$(realpath "$0")")
source "$here/lib.sh"
source "$here/render.sh"

for overlay in single ha; do
  render "$scratch/$overlay.yaml" "$k8s/overlays/$overlay"
  mkdir -p "$scratch/$overlay"
  node "$here/validate.js" extract-configs "$scratch/$overlay.yaml" "$scratch/$overlay"
  [[ -s $scratch/$overlay/control.textproto && -s $scratch/$overlay/relay.textproto ]] ||
    fail "$overlay: control.textproto and relay.textproto ConfigMaps expected"

  start_control --config="$scratch/$overlay/control.textproto"
  # The relay keeps the config's port range, session limit and drain time; it opens media sockets
  # only per session, so nothing beyond loopback is touched.
  run_bg "$LATCHKEY_RELAY_BIN" --config="$scratch/$overlay/relay.textproto" --control="127.0.0.1:$control_grpc" \
    --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --media_ip=127.0.0.1 --advertised_ip=127.0.0.1 \
    --worker_id="config-$overlay" --threads=1 >"$scratch/relay.log" 2>&1
  wait_for 20 "relay ready with $overlay's relay.textproto" grep -q 'latchkey-relay ready' "$scratch/relay.log"
  grep -q 'media_ports=30000-39999' "$scratch/relay.log" || fail "$overlay: relay did not take its port range from relay.textproto"
  wait_for 20 "relay registered" worker_ready "config-$overlay"
  # What the readiness probes ask: grpc.health.v1 on the gRPC port says SERVING.
  relay_grpc=$(logged "$scratch/relay.log" grpc_port)
  ctl health >/dev/null || fail "$overlay: control's health check is not SERVING"
  "$LATCHKEY_CTL_BIN" --server="127.0.0.1:$relay_grpc" health >/dev/null || fail "$overlay: relay's health check is not SERVING"
  # With no calls a SIGTERM drain ends at once, whatever drain_grace says.
  kill -TERM "${pids[@]}"
  for pid in "${pids[@]}"; do wait "$pid" || fail "$overlay: a server exited with $? on SIGTERM"; done
  pids=()
  echo "$overlay: control and relay ran with the rendered ConfigMaps"
done
