#!/usr/bin/env bash
# promtool checks the recording rules and alerts and runs their unit tests (one per alert; the
# manifests test checks that every alert has one).
here=$(dirname "$(realpath "$0")")
source "$here/lib.sh"
rules=${LATCHKEY_REPO:?}/deploy/monitoring/prometheus
promtool check rules "$rules/latchkey-rules.yml"
promtool test rules "$rules/latchkey-rules.test.yml"

# And the unit tests can fail: an alert threshold moved past its test's series must break them.
cp "$rules/latchkey-rules.yml" "$rules/latchkey-rules.test.yml" "$scratch/"
sed -i 's/latchkey_relay_ports_max > 0.85/latchkey_relay_ports_max > 0.95/' "$scratch/latchkey-rules.yml"
! cmp -s "$rules/latchkey-rules.yml" "$scratch/latchkey-rules.yml" || fail "mutation changed nothing"
if promtool test rules "$scratch/latchkey-rules.test.yml" >"$scratch/mutant.out" 2>&1; then
  fail "promtool test rules passed with a port-pool threshold of 95 %"
fi
echo "rejected as expected: port-pool alert at 95 %"
