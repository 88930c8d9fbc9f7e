#!/usr/bin/env bash
# Every overlay renders with `kubectl kustomize`; every object validates against the Kubernetes,
# prometheus-operator and KEDA schemas; the project's invariants hold (probes, no root, ports and
# flags the binaries accept, one image, drain time, monitoring wired to the workloads).
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

v="node $here/validate.js"
$v manifests --repo "$repo" --help-dir "$scratch/help" \
  single="$scratch/single.yaml" ha="$scratch/ha.yaml" single-raw-keepalive="$scratch/single-raw-keepalive.yaml"
$v monitoring --repo "$repo" "$scratch/monitoring.yaml" "$scratch/single.yaml"
$v autoscaling --repo "$repo" "$scratch/autoscaling.yaml" "$scratch/single.yaml"

# The checks must be able to fail: each broken copy of `single` has to be rejected.
mutant() {
  local what=$1 expr=$2
  sed -e "$expr" "$scratch/single.yaml" >"$scratch/mutant.yaml"
  ! cmp -s "$scratch/single.yaml" "$scratch/mutant.yaml" || fail "mutation '$what' changed nothing"
  if $v manifests --repo "$repo" --help-dir "$scratch/help" single="$scratch/mutant.yaml" >"$scratch/mutant.out" 2>&1; then
    fail "a manifest with $what passed validation"
  fi
  echo "rejected as expected: $what ($(grep -m1 FAIL "$scratch/mutant.out"))"
}
mutant "a metrics port other than the config's" 's/containerPort: 9400/containerPort: 9401/'
mutant "a pod allowed to run as root" '/runAsNonRoot: true/d'
mutant "a flag the relay does not have" 's/- --threads=2/- --thread_count=2/'
mutant "a string where the schema wants an integer" 's/replicas: 1$/replicas: "1"/'
mutant "a grace period shorter than the drain" 's/terminationGracePeriodSeconds: 3660/terminationGracePeriodSeconds: 60/'
mutant "a capability added" 's/- ALL/- ALL\n            add: [NET_ADMIN]/'
