#!/usr/bin/env bash
# The ConfigMaps every overlay renders are configs the real binaries load, with the certificates the
# manifests mount: deploy/k8s/pki/create-secrets.sh makes the Secrets from a throw-away CA, and each
# pod's volumes are laid out as the kubelet would (validate.js mount-pod: the relay's subPathExpr picks
# its worker's pair), so the config's own tls paths are used. Control and relay start with them
# (listen addresses moved to loopback), the relay registers over mutual TLS, and a call goes through
# control and the relay. The plaintext health ports answer the probes' question; the mutual-TLS ports
# refuse a plaintext client; a relay presenting another worker's certificate is refused; and control
# with the rendered listen addresses but without its tls block refuses to start (no plaintext
# fallback). For overlays/ha, control's store is the overlay's Redis group run on loopback from its
# rendered StatefulSet and ConfigMap (lib.sh start_redis_group; only the sentinels' addresses are
# swapped for loopback ones), and a second control replica sees what the first stored.
here=$(dirname "$(realpath "$0")")
source "$here/lib.sh"
source "$here/render.sh"

plain_ctl() { "$LATCHKEY_CTL_BIN" --timeout=2s "$@"; }

for overlay in single ha; do
  render "$scratch/$overlay.yaml" "$k8s/overlays/$overlay"
  worker=config-$overlay
  KUBECTL=$kubectl "$repo/deploy/k8s/pki/create-secrets.sh" --print "$scratch/pki-$overlay" "$worker" \
    >"$scratch/secrets-$overlay.yaml" 2>"$scratch/create-secrets.log" || fail "create-secrets.sh: $(cat "$scratch/create-secrets.log")"
  node "$here/validate.js" schema "$scratch/secrets-$overlay.yaml" >/dev/null
  croot=$scratch/$overlay/control relayroot=$scratch/$overlay/relay
  node "$here/validate.js" mount-pod "$scratch/$overlay.yaml" "$scratch/secrets-$overlay.yaml" Deployment/latchkey-control "$croot" ||
    fail "$overlay: control's volumes do not mount from the Secrets create-secrets.sh makes"
  node "$here/validate.js" mount-pod "$scratch/$overlay.yaml" "$scratch/secrets-$overlay.yaml" DaemonSet/latchkey-relay "$relayroot" \
    "WORKER_ID=$worker" HOST_IP=127.0.0.1 || fail "$overlay: the relay's volumes do not mount from the Secrets create-secrets.sh makes"
  # On a node without a pair in the Secret a relay does not start (rather than run without TLS).
  if node "$here/validate.js" mount-pod "$scratch/$overlay.yaml" "$scratch/secrets-$overlay.yaml" DaemonSet/latchkey-relay \
    "$scratch/$overlay/unknown-node" WORKER_ID=node-without-a-pair HOST_IP=127.0.0.1 2>/dev/null; then
    fail "$overlay: a relay on a node the Secret has no pair for would start"
  fi
  # The configs, with their absolute paths (/etc/latchkey/...) moved under the laid-out roots.
  for pair in "control:$croot" "relay:$relayroot"; do
    name=${pair%%:*} root=${pair#*:}
    config=$root/etc/latchkey/config/$name.textproto
    [[ -s $config ]] || fail "$overlay: $name.textproto not mounted at /etc/latchkey/config"
    grep -q '^tls {' "$config" || fail "$overlay: $name.textproto has no tls block"
    sed -i "s#\"/etc/latchkey/#\"$root/etc/latchkey/#g" "$config"
  done

  # ha: its Redis group, and control's store pointed at it (the config's own store names the pods'
  # cluster DNS names; the same store string parses below).
  store=()
  if [[ $overlay == ha ]]; then
    config_store=$(sed -n 's/^store: "\(.*\)"$/\1/p' "$croot/etc/latchkey/config/control.textproto")
    [[ $config_store == redis+sentinel://*/* ]] || fail "ha: control.textproto's store is '$config_store'"
    start_redis_group "$scratch/ha.yaml"
    [[ ${config_store##*/} == "$redis_master_name" ]] || fail "ha: control's store names group ${config_store##*/}, the sentinels $redis_master_name"
    store=(--store="$redis_store")
    echo "ha: Redis group up on loopback (primary port $(redis_primary)), control's store $redis_store"
  fi

  # Control: the config's listen addresses moved to loopback; TLS as configured.
  health=$(free_port)
  run_bg "$LATCHKEY_CONTROL_BIN" --config="$croot/etc/latchkey/config/control.textproto" --listen=127.0.0.1:0 \
    --worker_listen=127.0.0.2:0 --metrics_listen=127.0.0.1:0 --health_listen="127.0.0.1:$health" "${store[@]}" >"$scratch/control.log" 2>&1
  wait_for 20 "control ready with $overlay's control.textproto" grep -q 'latchkey-control ready' "$scratch/control.log"
  grep 'latchkey-control ready' "$scratch/control.log" | grep -q ' tls=true' || fail "$overlay: control runs without TLS"
  control_grpc=$(logged "$scratch/control.log" grpc_port)
  control_workers=$(logged "$scratch/control.log" worker_grpc_port)
  # shellcheck disable=SC2034 # lib.sh's ctl and issue: the operator certificate comes from the same CA
  pki=$scratch/pki-$overlay
  # The relay keeps the config's port range, session limit and drain time; it opens media sockets
  # only per session, so nothing beyond loopback is touched. Media on 127.0.0.2: the demo call's
  # phones on 127.0.0.1 get ephemeral ports, which may fall in the relay's range, and the relay drops
  # packets from its own address and range (loop protection).
  relay_health=$(free_port)
  run_bg "$LATCHKEY_RELAY_BIN" --config="$relayroot/etc/latchkey/config/relay.textproto" --control="127.0.0.2:$control_workers" \
    --listen=127.0.0.2:0 --health_listen="127.0.0.1:$relay_health" --metrics_listen=127.0.0.1:0 --media_ip=127.0.0.2 \
    --advertised_ip=127.0.0.2 --worker_id="$worker" --threads=1 >"$scratch/relay.log" 2>&1
  wait_for 20 "relay ready with $overlay's relay.textproto" grep -q 'latchkey-relay ready' "$scratch/relay.log"
  grep -q 'media_ports=30000-39999' "$scratch/relay.log" || fail "$overlay: relay did not take its port range from relay.textproto"
  wait_for 20 "relay registered over mutual TLS" worker_ready "$worker"
  relay_grpc=$(logged "$scratch/relay.log" grpc_port)

  # What the probes ask: grpc.health.v1 on the plaintext health ports says SERVING.
  plain_ctl --server="127.0.0.1:$health" health >/dev/null || fail "$overlay: control's health port is not SERVING"
  plain_ctl --server="127.0.0.1:$relay_health" health >/dev/null || fail "$overlay: relay's health port is not SERVING"
  # The mutual-TLS ports refuse a client without a certificate, even for a health check.
  for address in "127.0.0.1:$control_grpc" "127.0.0.2:$control_workers" "127.0.0.2:$relay_grpc"; do
    if plain_ctl --server="$address" health >"$scratch/plain.out" 2>&1; then
      fail "$overlay: $address answered a plaintext client"
    fi
  done
  ctl health >/dev/null || fail "$overlay: control's API port is not SERVING over mutual TLS"
  # Every hop: operator -> control, control -> relay (checking the relay's identity), relay -> control.
  ctl demo-call --packets=10 >"$scratch/demo-call.log" 2>&1 || fail "$overlay: demo-call: $(cat "$scratch/demo-call.log")"

  if [[ $overlay == ha ]]; then
    grep 'latchkey-control ready' "$scratch/control.log" | grep -qF "store=$redis_store" || fail "ha: control does not use the Redis store"
    # Another replica with the same config and store sees a binding the first one stored.
    ctl register --aor=sip:ha-check@example.com --contact='<sip:ha-check@192.168.1.20:5060>' --source=203.0.113.7:41234 \
      --registrar=127.0.0.1:5060 >"$scratch/register.log" 2>&1 || fail "ha: register: $(cat "$scratch/register.log")"
    run_bg "$LATCHKEY_CONTROL_BIN" --config="$croot/etc/latchkey/config/control.textproto" --listen=127.0.0.1:0 \
      --worker_listen=127.0.0.2:0 --metrics_listen=127.0.0.1:0 --health_listen=127.0.0.1:0 "${store[@]}" >"$scratch/control-2.log" 2>&1
    wait_for 20 "a second control replica" grep -q 'latchkey-control ready' "$scratch/control-2.log"
    first_grpc=$control_grpc
    control_grpc=$(logged "$scratch/control-2.log" grpc_port)
    ctl bindings list | grep -q 'sip:ha-check@example.com' || fail "ha: the second replica does not list the first one's binding"
    control_grpc=$first_grpc
    echo "ha: a binding registered through one control replica is listed by another (shared Redis store)"
  fi

  # A relay whose certificate names another worker is refused.
  impostor=impostor-$overlay
  run_bg "$LATCHKEY_RELAY_BIN" --config="$relayroot/etc/latchkey/config/relay.textproto" --control="127.0.0.2:$control_workers" \
    --listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 --media_ip=127.0.0.1 --advertised_ip=127.0.0.1 --stun_listen=off \
    --port_min=41000 --port_max=41099 --worker_id="$impostor" --threads=1 >"$scratch/impostor.log" 2>&1
  # code=7: PERMISSION_DENIED.
  wait_for 20 "control to refuse $impostor" grep -q 'registration with control failed.* code=7 ' "$scratch/impostor.log"
  ! worker_ready "$impostor" || fail "$overlay: a relay registered as $impostor with $worker's certificate"

  # With no calls a SIGTERM drain ends at once, whatever drain_grace says. (Redis too exits 0.)
  kill -TERM "${pids[@]}"
  for pid in "${pids[@]}"; do wait "$pid" || fail "$overlay: a server exited with $? on SIGTERM"; done
  pids=()

  # ha: the config's own store (cluster DNS names, unresolvable here) parses, and control starts
  # and keeps trying the sentinels rather than fail.
  if [[ $overlay == ha ]]; then
    run_bg "$LATCHKEY_CONTROL_BIN" --config="$croot/etc/latchkey/config/control.textproto" --listen=127.0.0.1:0 \
      --worker_listen=127.0.0.2:0 --metrics_listen=127.0.0.1:0 --health_listen=127.0.0.1:0 >"$scratch/control-dns.log" 2>&1
    wait_for 30 "control with the config's own store" grep -q 'latchkey-control ready' "$scratch/control-dns.log"
    grep 'latchkey-control ready' "$scratch/control-dns.log" | grep -qF "store=$config_store" || fail "ha: control's store is not the config's"
    kill -TERM "${pids[@]}"
    for pid in "${pids[@]}"; do wait "$pid" || true; done
    pids=()
    echo "ha: control.textproto's own store ($config_store) parses"
  fi

  # No plaintext fallback: the rendered listen addresses (0.0.0.0) without the tls block stop control
  # before it binds them.
  sed '/^tls {/,/^}/d' "$croot/etc/latchkey/config/control.textproto" >"$scratch/control-no-tls.textproto"
  ! grep -q 'cert_file' "$scratch/control-no-tls.textproto" || fail "tls block not removed"
  if timeout 10 "$LATCHKEY_CONTROL_BIN" --config="$scratch/control-no-tls.textproto" --metrics_listen=127.0.0.1:0 \
    --health_listen=127.0.0.1:0 >"$scratch/no-tls.log" 2>&1; then
    fail "$overlay: control started on 0.0.0.0 without TLS"
  fi
  grep -q 'needs mutual TLS' "$scratch/no-tls.log" || fail "$overlay: control without TLS: $(cat "$scratch/no-tls.log")"
  echo "$overlay: control and relay ran with the rendered ConfigMaps and create-secrets.sh's certificates over mutual TLS"
done
