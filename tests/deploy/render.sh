# Sourced after lib.sh: renders what deploy/ ships with `kubectl kustomize` into $scratch.
#   render_all    -> $scratch/{single,ha,single-raw-keepalive,monitoring,autoscaling}.yaml
repo=${LATCHKEY_REPO:?}
kubectl=${KUBECTL:-kubectl}
k8s=$repo/deploy/k8s

render() {
  local out=$1 dir=$2
  # kustomize >= 4 warns on stderr about 2.0.3-era field names; real errors fail the command.
  "$kubectl" kustomize "$dir" >"$out" 2>"$out.err" || { cat "$out.err" >&2; fail "kubectl kustomize $dir"; }
  [[ -s $out ]] || fail "kubectl kustomize $dir rendered nothing"
}

# The raw-keepalive component on top of `single`, as a user's overlay would add it. The overlay lives
# in the build tree (kustomize wants relative paths); kubectl 1.20 (kustomize 2.0.3, no components)
# gets the component's patch as a plain patch instead.
render_raw_keepalive() {
  local out=$1
  local dir="${LATCHKEY_DEPLOY_WORK:-$scratch}/raw-keepalive-overlay.$$"
  rm -rf "$dir" && mkdir -p "$dir"
  cleanup_paths+=("$dir")
  local single components
  single=$(realpath --relative-to="$dir" "$k8s/overlays/single")
  components=$(realpath --relative-to="$dir" "$k8s/components/raw-keepalive")
  printf 'resources:\n  - %s\ncomponents:\n  - %s\n' "$single" "$components" >"$dir/kustomization.yaml"
  if ! "$kubectl" kustomize "$dir" >"$out" 2>"$out.err"; then
    local minor
    minor=$("$kubectl" version --client -o json | node -e 'console.log(JSON.parse(require("fs").readFileSync(0)).clientVersion.minor)')
    [[ ${minor%%[^0-9]*} -lt 21 ]] || { cat "$out.err" >&2; fail "raw-keepalive component does not render"; }
    cp "$k8s/components/raw-keepalive/relay-net-raw.yaml" "$dir/"
    printf 'bases:\n  - %s\npatchesStrategicMerge:\n  - relay-net-raw.yaml\n' "$single" >"$dir/kustomization.yaml"
    "$kubectl" kustomize "$dir" >"$out" 2>"$out.err" || { cat "$out.err" >&2; fail "raw-keepalive patch does not render"; }
  fi
}

render_all() {
  render "$scratch/single.yaml" "$k8s/overlays/single"
  render "$scratch/ha.yaml" "$k8s/overlays/ha"
  render_raw_keepalive "$scratch/single-raw-keepalive.yaml"
  render "$scratch/monitoring.yaml" "$repo/deploy/monitoring"
  render "$scratch/autoscaling.yaml" "$k8s/autoscaling/relay-capacity"
}
