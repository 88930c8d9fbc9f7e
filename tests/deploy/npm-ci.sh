#!/usr/bin/env bash
# Test fixture: installs the pinned schema packages (package-lock.json) into DIR/node_modules with
# npm ci, once per lock file content.
#   npm-ci.sh SOURCE_DIR DIR
set -euo pipefail
src=$1 dir=$2
mkdir -p "$dir"
stamp="$dir/node_modules/.latchkey-lock.sha256"
want=$(sha256sum "$src/package-lock.json" | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  echo "npm-ci: $dir/node_modules is current"
  exit 0
fi
cp "$src/package.json" "$src/package-lock.json" "$dir/"
cd "$dir"
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
echo "$want" >"$stamp"
node -e 'require("kubernetes-models/apps/v1/Deployment"); require("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1"); require("yaml")'
echo "npm-ci: installed into $dir/node_modules"
