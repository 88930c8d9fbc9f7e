#!/usr/bin/env bash
# `promtool check metrics` on live scrapes of a running control and relay, after a call went through
# them (so the lazily created RPC series exist too): no lint problems at all.
here=$(dirname "$(realpath "$0")")
source "$here/lib.sh"

start_control
start_relay lint-relay
ctl register --aor=sip:lint@example.com --contact='<sip:lint@192.168.1.20:5060>' \
  --source=203.0.113.7:41234 --registrar=127.0.0.1:5060 >/dev/null
ctl demo-call --packets=20 >"$scratch/demo-call.log" 2>&1 || fail "demo-call failed: $(cat "$scratch/demo-call.log")"

status=0
for target in control:"$control_metrics" relay:"$relay_metrics"; do
  name=${target%%:*} port=${target##*:}
  curl -sf "http://127.0.0.1:$port/metrics" >"$scratch/$name.metrics" || fail "scrape of $name failed"
  grep -q '^latchkey_' "$scratch/$name.metrics" || fail "$name exports no latchkey_ metrics"
  # promtool exits non-zero on lint problems and prints them; either is a failure.
  if ! promtool check metrics <"$scratch/$name.metrics" >"$scratch/$name.lint" 2>&1 || [[ -s $scratch/$name.lint ]]; then
    echo "FAIL: $name /metrics has lint problems:" >&2
    cat "$scratch/$name.lint" >&2
    status=1
  else
    echo "$name: $(grep -c '^latchkey_' "$scratch/$name.metrics") latchkey_ samples, no lint problems"
  fi
done
exit "$status"
