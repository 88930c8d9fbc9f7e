# Sourced after lib.sh: renders what deploy/ ships with `kubectl kustomize` into $scratch.
#   render_all    -> $scratch/{single,ha,single-raw-keepalive,single-cert-manager,single-ng,single-fast-path,monitoring,autoscaling}.yaml
repo=${LATCHKEY_REPO:?}
kubectl=${KUBECTL:-kubectl}
k8s=$repo/deploy/k8s

render() {
  local out=$1 dir=$2
  # kustomize >= 4 warns on stderr about 2.0.3-era field names; real errors fail the command.
  "$kubectl" kustomize "$dir" >"$out" 2>"$out.err" || { cat "$out.err" >&2; fail "kubectl kustomize $dir"; }
  [[ -s $out ]] || fail "kubectl kustomize $dir rendered nothing"
}

# render_component OUT COMPONENT: a component on top of `single`, as a user's overlay would add it.
# The overlay lives in the build tree (kustomize wants relative paths); kubectl 1.20 (kustomize
# 2.0.3, no components) gets the component's resources and patches as plain ones instead, as the
# components' comments tell its users to do.
render_component() {
  local out=$1 component=$2
  local dir="${LATCHKEY_DEPLOY_WORK:-$scratch}/$component-overlay.$$"
  rm -rf "$dir" && mkdir -p "$dir"
  cleanup_paths+=("$dir")
  local single comp
  single=$(realpath --relative-to="$dir" "$k8s/overlays/single")
  comp=$(realpath --relative-to="$dir" "$k8s/components/$component")
  printf 'resources:\n  - %s\ncomponents:\n  - %s\n' "$single" "$comp" >"$dir/kustomization.yaml"
  if ! "$kubectl" kustomize "$dir" >"$out" 2>"$out.err"; then
    local minor
    minor=$("$kubectl" version --client -o json | node -e 'console.log(JSON.parse(require("fs").readFileSync(0)).clientVersion.minor)')
    [[ ${minor%%[^0-9]*} -lt 21 ]] || { cat "$out.err" >&2; fail "component $component does not render"; }
    cp "$k8s/components/$component"/*.yaml "$dir/"
    rm "$dir/kustomization.yaml"
    node -e '
      const YAML = require("yaml"), fs = require("fs");
      const [file, single] = process.argv.slice(1);
      const k = YAML.parse(fs.readFileSync(file, "utf8"));
      const list = (name, items) => (items && items.length ? `${name}:\n${items.map((i) => `  - ${i}\n`).join("")}` : "");
      const json6902 = (k.patchesJson6902 || []).length
        ? "patchesJson6902:\n" + k.patchesJson6902.map((p) => `  - target: {group: ${p.target.group}, version: ${p.target.version}, kind: ${p.target.kind}, name: ${p.target.name}}\n    path: ${p.path}\n`).join("")
        : "";
      process.stdout.write(list("bases", [single]) + list("resources", k.resources) + list("patchesStrategicMerge", k.patchesStrategicMerge) + json6902);
    ' "$k8s/components/$component/kustomization.yaml" "$single" >"$dir/kustomization.yaml"
    "$kubectl" kustomize "$dir" >"$out" 2>"$out.err" || { cat "$out.err" >&2; fail "component $component as plain patches does not render"; }
  fi
}

render_all() {
  render "$scratch/single.yaml" "$k8s/overlays/single"
  render "$scratch/ha.yaml" "$k8s/overlays/ha"
  render_component "$scratch/single-raw-keepalive.yaml" raw-keepalive
  render_component "$scratch/single-cert-manager.yaml" cert-manager
  render_component "$scratch/single-ng.yaml" ng
  render_component "$scratch/single-fast-path.yaml" fast-path
  render "$scratch/monitoring.yaml" "$repo/deploy/monitoring"
  render "$scratch/autoscaling.yaml" "$k8s/autoscaling/relay-capacity"
}
