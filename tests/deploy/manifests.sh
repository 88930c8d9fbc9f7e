#!/usr/bin/env bash
# Every overlay (and component) renders with `kubectl kustomize`; every object validates against the
# Kubernetes, prometheus-operator, KEDA and cert-manager schemas; the project's invariants hold
# (mutual TLS on every gRPC hop from mounted Secrets, probes on the plaintext health ports,
# NetworkPolicies, no root, ports and flags the binaries accept, one image, drain time, monitoring
# wired to the workloads; for overlays/ha, control's replicas, spread and store, and the Redis group:
# three pods with volumes on three nodes, drained one at a time, reachable from control only, AOF
# and min-replicas-to-write on, sentinels as the store names them). Then broken copies, one per
# invariant, must all be rejected.
here=$(dirname "$(realpath "$0")")
source "$here/lib.sh"
source "$here/render.sh"

render_all
"$kubectl" version --client 2>/dev/null | sed -n 1p  # not head: pipefail would fail on the SIGPIPE it can cause

# The flags each binary accepts, for the invariant "every flag a manifest passes exists".
mkdir -p "$scratch/help"
"$LATCHKEY_CONTROL_BIN" --helpfull >"$scratch/help/latchkey-control.txt" 2>&1 || true
"$LATCHKEY_RELAY_BIN" --helpfull >"$scratch/help/latchkey-relay.txt" 2>&1 || true
"$LATCHKEY_CTL_BIN" --help >"$scratch/help/latchkeyctl.txt" 2>&1 || true
grep -q -- '--advertised_ip' "$scratch/help/latchkey-relay.txt" || fail "latchkey-relay --helpfull lists no flags"
grep -q -- '--worker_listen' "$scratch/help/latchkey-control.txt" || fail "latchkey-control --helpfull lists no --worker_listen"

v="node $here/validate.js"
$v manifests --repo "$repo" --help-dir "$scratch/help" \
  single="$scratch/single.yaml" ha="$scratch/ha.yaml" single-raw-keepalive="$scratch/single-raw-keepalive.yaml" \
  single-cert-manager="$scratch/single-cert-manager.yaml" single-ng="$scratch/single-ng.yaml" \
  single-fast-path="$scratch/single-fast-path.yaml"
$v monitoring --repo "$repo" "$scratch/monitoring.yaml" "$scratch/single.yaml"
$v autoscaling --repo "$repo" "$scratch/autoscaling.yaml" "$scratch/single.yaml"

# The checks must be able to fail: each broken copy has to be rejected.
rejected=0
reject() {
  local what=$1 overlay=$2 mutant=$3
  if $v manifests --repo "$repo" --help-dir "$scratch/help" "$overlay=$mutant" >"$scratch/mutant.out" 2>&1; then
    fail "a manifest with $what passed validation"
  fi
  rejected=$((rejected + 1))
  echo "rejected as expected: $what ($(grep -m1 FAIL "$scratch/mutant.out"))"
}
# Text edits of `single`.
mutant() {
  local what=$1 expr=$2
  sed -e "$expr" "$scratch/single.yaml" >"$scratch/mutant.yaml"
  ! cmp -s "$scratch/single.yaml" "$scratch/mutant.yaml" || fail "mutation '$what' changed nothing"
  reject "$what" single "$scratch/mutant.yaml"
}
mutant "a metrics port other than the config's" 's/containerPort: 9400/containerPort: 9401/'
mutant "a pod allowed to run as root" '/runAsNonRoot: true/d'
mutant "a flag the relay does not have" 's/- --threads=2/- --thread_count=2/'
mutant "a string where the schema wants an integer" 's/replicas: 1$/replicas: "1"/'
mutant "a grace period shorter than the drain" 's/terminationGracePeriodSeconds: 3660/terminationGracePeriodSeconds: 60/'
mutant "a capability added" 's/- ALL/- ALL\n            add: [NET_ADMIN]/'
# Structural edits (validate.js mutations), each of the overlay its target is in.
while read -r name; do
  case $name in
    netraw-*) overlay="single-raw-keepalive" ;;
    fastpath-*) overlay="single-fast-path" ;;
    csi-* | control-certificate-*) overlay="single-cert-manager" ;;
    ha-* | redis-*) overlay=ha ;;
    *) overlay=single ;;
  esac
  $v mutate "$name" "$scratch/$overlay.yaml" "$scratch/mutant.yaml" || fail "mutation $name does not apply to $overlay"
  reject "$name" "$overlay" "$scratch/mutant.yaml"
done < <($v mutations)
((rejected >= 60)) || fail "only $rejected mutants"
echo "$rejected broken copies rejected"
