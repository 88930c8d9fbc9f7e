#!/usr/bin/env bash
# A real Prometheus on loopback scrapes a running control and relay through the shipped scrape config
# (deploy/monitoring/prometheus/prometheus.yml, Kubernetes discovery swapped for static targets that
# carry the labels discovery would) with the shipped rules. latchkeyctl registers a phone and places
# a call; the series, the recording rules and the dashboard's queries are read back through the HTTP
# API; killing the relay makes LatchkeyRelayWorkerLost fire.
here=$(dirname "$(realpath "$0")")
source "$here/lib.sh"
repo=${LATCHKEY_REPO:?}

start_control
start_relay e2e-relay

port=$(free_port)
prom=http://127.0.0.1:$port
node "$here/validate.js" prometheus-config "$repo/deploy/monitoring/prometheus/prometheus.yml" \
  "127.0.0.1:$control_metrics" "127.0.0.1:$relay_metrics" "$scratch/prometheus.yml"
promtool check config "$scratch/prometheus.yml" >/dev/null
run_bg prometheus --config.file="$scratch/prometheus.yml" --storage.tsdb.path="$scratch/tsdb" \
  --web.listen-address="127.0.0.1:$port" --log.level=warn >"$scratch/prometheus.log" 2>&1
wait_for 30 "Prometheus ready" curl -sf "$prom/-/ready"

ctl register --aor=sip:alice@example.com --contact='<sip:alice@192.168.1.20:5060>' \
  --source=203.0.113.7:41234 --registrar=127.0.0.1:5060 >"$scratch/register.log" 2>&1 ||
  fail "register: $(cat "$scratch/register.log")"
ctl demo-call --packets=50 >"$scratch/demo-call.log" 2>&1 || fail "demo-call: $(cat "$scratch/demo-call.log")"

# Number of series a query returns.
series() {
  # Without -f: a rejected query answers 400 with status "error", which prints -1.
  curl -sG "$prom/api/v1/query" --data-urlencode "query=$1" |
    node -e 'const r = JSON.parse(require("fs").readFileSync(0)); console.log(r.status === "success" ? r.data.result.length : -1)'
}
has_series() { (($(series "$1") > 0)); }

expected=(
  # The shipped relabelling ran (pod and node labels from discovery metadata).
  'up{job="latchkey-control",pod="latchkey-control-test",node="loopback"} == 1'
  'up{job="latchkey-relay",pod="latchkey-relay-test",node="loopback"} == 1'
  # Registrations and NAT.
  'latchkey_binding_allocations_total{job="latchkey-control",result="created"} >= 1'
  'latchkey_bindings{nat_state="behind_nat"} >= 1'
  'latchkey_nat_reasons_total{reason="contact_private"} >= 1'
  # The call: control's view and the relay's.
  'latchkey_session_allocations_total{job="latchkey-control"} >= 1'
  'latchkey_session_ends_total{reason="released"} >= 1'
  'latchkey_relay_sessions_created_total{job="latchkey-relay"} >= 1'
  'latchkey_relay_packets_total{direction="in"} >= 100'
  'latchkey_relay_packets_total{direction="out"} >= 1'
  'latchkey_relay_latches_total >= 2'
  'latchkey_relay_drops_total'
  'latchkey_workers{state="ready"} == 1'
  'latchkey_rpc_requests_total{service="latchkey.v1.NatControlService",method="AllocateSession",code="OK"} >= 1'
  'latchkey_rpc_duration_seconds_bucket{service="latchkey.v1.RelayService",method="CreateRelaySession"}'
  # Capacity and load for orchestration.
  'latchkey_relay_ports_max == 200'
  'latchkey_relay_ports_free'
  'latchkey_relay_sessions_max'
  'latchkey_relay_sessions'
  'latchkey_relay_draining == 0'
  # Recording rules over live data.
  'latchkey:relay_ports_used:ratio'
  'latchkey:relay_sessions_used:ratio'
  'latchkey:relay_packets:rate1m'
  'latchkey:relay_nodes_wanted:count >= 1'
)
for query in "${expected[@]}"; do
  wait_for 20 "Prometheus to return: $query" has_series "$query"
done
echo "${#expected[@]} expected series read back through Prometheus"

# Every rule evaluates without error.
rules_ok() {
  curl -sf "$prom/api/v1/rules" | node -e '
    const groups = JSON.parse(require("fs").readFileSync(0)).data.groups;
    const rules = groups.flatMap((g) => g.rules);
    const bad = rules.filter((r) => r.health !== "ok");
    if (rules.length < 10 || bad.length) { console.error(bad.map((r) => `${r.name}: ${r.health} ${r.lastError || ""}`).join("\n")); process.exit(1); }'
}
wait_for 10 "every rule evaluated healthy" rules_ok

# Every dashboard query is PromQL Prometheus accepts ($__rate_interval is Grafana's).
count=0
while IFS= read -r expr; do
  [[ -n $expr ]] || continue
  query=${expr//\$__rate_interval/1m}
  (($(series "$query") >= 0)) || fail "dashboard query rejected by Prometheus: $expr"
  count=$((count + 1))
done < <(node "$here/validate.js" dashboard-queries "$repo/deploy/monitoring/grafana/latchkey-dashboard.json")
((count >= 20)) || fail "only $count dashboard queries"
echo "$count dashboard queries accepted"

# A relay that dies is declared lost after 3 missed heartbeats; the alert fires.
alert_state() {
  curl -sf "$prom/api/v1/alerts" | node -e '
    const [name, state] = process.argv.slice(1);
    const alerts = JSON.parse(require("fs").readFileSync(0)).data.alerts;
    process.exit(alerts.some((a) => a.labels.alertname === name && a.state === state) ? 0 : 1)' "$1" "$2"
}
alert_state LatchkeyNoRelayWorkers pending && fail "LatchkeyNoRelayWorkers pending while a relay is up"
kill -KILL "$relay_pid"
wait "$relay_pid" 2>/dev/null || true
wait_for 20 "LatchkeyRelayWorkerLost firing" alert_state LatchkeyRelayWorkerLost firing
wait_for 10 "LatchkeyNoRelayWorkers pending" alert_state LatchkeyNoRelayWorkers pending
echo "relay killed: LatchkeyRelayWorkerLost firing, LatchkeyNoRelayWorkers pending"
