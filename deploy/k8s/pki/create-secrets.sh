#!/usr/bin/env bash
# The Secrets deploy/k8s/base mounts, from a CA made with scripts/pki.sh, for clusters without
# cert-manager (with it, use deploy/k8s/components/cert-manager instead).
#
#   deploy/k8s/pki/create-secrets.sh [OPTIONS] PKI_DIR [NODE...]
#
# PKI_DIR is a scripts/pki.sh directory (created, with a new CA, if it does not exist; keep it, with
# its ca.key, somewhere safe and offline). Issues what is missing there: control's certificate
# (control-control) and one worker certificate per media NODE (worker-NODE, named after the node,
# which is the relay's worker id in base), then applies
#   latchkey-control-tls   tls.crt, tls.key, ca.crt
#   latchkey-relay-tls     ca.crt, and NODE.crt, NODE.key for every NODE
# with kubectl. Without NODE arguments the nodes are those labelled latchkey.io/media=true. Run it
# again after adding a media node: a relay whose node has no pair in the Secret does not start.
#
# Options:
#   --days=N           validity of newly issued certificates (default 365). Control picks up a renewed
#                      Secret without a restart; a relay only when its pod restarts (it mounts its
#                      own pair by subPath), so renew ahead: --renew re-issues every certificate.
#   --renew            issue new certificates even where some exist
#   --namespace=NS     default latchkey
#   --print            print the Secrets as YAML instead of applying them (no cluster needed)
#
# An operator certificate for latchkeyctl:  scripts/pki.sh PKI_DIR issue operator YOUR_NAME
# A PBX's:                                  scripts/pki.sh PKI_DIR issue pbx PBX_NAME
set -euo pipefail
here=$(dirname "$(realpath "$0")")
pki_sh=$here/../../../scripts/pki.sh
kubectl=${KUBECTL:-kubectl}

days=365 renew=0 namespace=latchkey print=0
while [[ ${1:-} == --* ]]; do
  case "$1" in
    --days=*) days=${1#--days=} ;;
    --renew) renew=1 ;;
    --namespace=*) namespace=${1#--namespace=} ;;
    --print) print=1 ;;
    *) echo "create-secrets: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[[ $# -ge 1 ]] || { sed -n '2,27p' "$0" >&2; exit 2; }
dir=$1
shift
nodes=("$@")
if ((${#nodes[@]} == 0)); then
  mapfile -t nodes < <("$kubectl" get nodes -l latchkey.io/media=true -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
  ((${#nodes[@]} > 0)) || { echo "create-secrets: no node is labelled latchkey.io/media=true; name the nodes" >&2; exit 1; }
fi

bash "$pki_sh" "$dir" init >&2
issue() {
  local role=$1 name=$2
  if ((renew)) || [[ ! -f $dir/$role-$name.crt ]]; then
    # No DNS or IP SANs: Latchkey checks identities (URI SANs), not host names.
    bash "$pki_sh" "$dir" issue "$role" "$name" --days="$days" --dns= --ip= >&2
  fi
}
issue control control
args=()
for node in "${nodes[@]}"; do
  issue worker "$node"
  args+=(--from-file="$node.crt=$dir/worker-$node.crt" --from-file="$node.key=$dir/worker-$node.key")
done

secrets() {
  "$kubectl" create secret generic latchkey-control-tls --namespace="$namespace" --dry-run=client -o yaml \
    --from-file=tls.crt="$dir/control-control.crt" --from-file=tls.key="$dir/control-control.key" \
    --from-file=ca.crt="$dir/ca.crt"
  echo "---"
  "$kubectl" create secret generic latchkey-relay-tls --namespace="$namespace" --dry-run=client -o yaml \
    --from-file=ca.crt="$dir/ca.crt" "${args[@]}"
}
if ((print)); then
  secrets
else
  secrets | "$kubectl" apply -f -
fi
