# Shared by the tests/e2e scripts: a real NAT built from network namespaces, with latchkey-control,
# one latchkey-relay and a tiny registrar on the public side and a sipp phone behind the NAT.
#
#   public ns  (lk-e2e-PID-pub)    203.0.113.1   registrar (sip_tool.py, UDP 5060), relay keepalive source
#                                  203.0.113.10  relay media/STUN/own socket; control + relay gRPC on 127.0.0.1
#   router ns  (lk-e2e-PID-nat)    203.0.113.2 (wan0) / 10.77.0.1 (lan1): MASQUERADE out of wan0,
#                                  UDP conntrack timeouts 10 s, uninvited packets on wan0 dropped
#   phone ns   (lk-e2e-PID-phone)  10.77.0.2     sipp: one REGISTER, then answers OPTIONS only
#
# Every address lives only inside these namespaces; nothing is sent outside them. Everything is
# removed on any exit. Source it with LATCHKEY_{CONTROL,RELAY,CTL}_BIN set (CMake does that).
set -euo pipefail

e2e_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../shell_lib.sh
source "$e2e_dir/../shell_lib.sh"
SKIP=77

REGISTRAR_IP=203.0.113.1
REGISTRAR=$REGISTRAR_IP:5060
RELAY_IP=203.0.113.10
NAT_PUBLIC_IP=203.0.113.2
NAT_PRIVATE_IP=10.77.0.1
PHONE_IP=10.77.0.2
PHONE_PORT=5060
AOR="sip:phone@$REGISTRAR_IP"
# Control's NAT policy: OPTIONS every 5 s, unreachable after 2 misses.
KEEPALIVE_INTERVAL=5
KEEPALIVE_THRESHOLD=2
# The router forgets an idle UDP mapping after this many seconds.
CONNTRACK_UDP_TIMEOUT=10

step() { echo "---- $(date +%T) $*"; }
skip() {
  echo "SKIP: $*"
  exit "$SKIP"
}

# --- Preconditions: skip (77) where this cannot run, fail where the test setup is incomplete.
((EUID == 0)) || skip "needs root (network namespaces, iptables, raw sockets)"
command -v ip >/dev/null || skip "iproute2 (ip) not installed"
command -v iptables >/dev/null || skip "iptables not installed"
for var in LATCHKEY_CONTROL_BIN LATCHKEY_RELAY_BIN LATCHKEY_CTL_BIN; do
  [[ -x ${!var:-} ]] || fail "$var is not set to an executable (run through ctest)"
done
command -v sipp >/dev/null || fail "sipp not installed (scripts/install-deps.sh installs sip-tester)"
command -v python3 >/dev/null || fail "python3 not installed"
command -v curl >/dev/null || fail "curl not installed"

prefix="lk-e2e-$$"
NS_PUB=$prefix-pub
NS_NAT=$prefix-nat
NS_PHONE=$prefix-phone
scratch=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-e2e-$$.XXXXXX")
pids=()
namespaces=()

cleanup() {
  local rc=$?
  set +e
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  if ((rc != 0 && rc != SKIP)); then
    if [[ " ${namespaces[*]} " == *" $NS_NAT "* && -r /proc/net/nf_conntrack ]]; then
      echo "----- router conntrack table" >&2
      ip netns exec "$NS_NAT" cat /proc/net/nf_conntrack >&2
    fi
    for log in "$scratch"/*.log; do
      [[ -f $log ]] || continue
      echo "----- $(basename "$log") (last 40 lines)" >&2
      tail -n 40 "$log" >&2
    done
  fi
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$scratch"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# Namespaces and scratch directories left behind by an earlier run that was killed outright
# (SIGKILL: no trap runs; its processes died with it, see run_in).
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^lk-e2e-[0-9]*-' || true); do
  owner=${ns#lk-e2e-}
  owner=${owner%%-*}
  kill -0 "$owner" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
done
remove_stale_scratch latchkey-e2e

# Processes die with this script even when it is killed outright (a CTest timeout sends SIGKILL):
# setpriv gives them a parent-death signal, kept across `ip netns exec` (which execs).
# run_in NS LOG COMMAND...: runs COMMAND in the background inside NS; sets last_pid.
run_in() {
  local ns=$1 log=$2
  shift 2
  setpriv --pdeathsig KILL -- ip netns exec "$ns" "$@" >"$log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
}

in_ns() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

# build_nat [MASQUERADE OPTIONS...]: the three namespaces, wired and configured.
build_nat() {
  ip netns add "$NS_PUB" || skip "cannot create network namespaces (ip netns add failed)"
  namespaces+=("$NS_PUB")
  ip netns add "$NS_NAT"
  namespaces+=("$NS_NAT")
  ip netns add "$NS_PHONE"
  namespaces+=("$NS_PHONE")
  local ns
  for ns in "${namespaces[@]}"; do ip -n "$ns" link set lo up; done
  # Created inside the namespaces, so parallel tests never clash on interface names.
  ip -n "$NS_PUB" link add pub0 type veth peer name wan0 netns "$NS_NAT"
  ip -n "$NS_PHONE" link add lan0 type veth peer name lan1 netns "$NS_NAT"
  ip -n "$NS_PUB" addr add "$REGISTRAR_IP/24" dev pub0
  ip -n "$NS_PUB" addr add "$RELAY_IP/24" dev pub0
  ip -n "$NS_NAT" addr add "$NAT_PUBLIC_IP/24" dev wan0
  ip -n "$NS_NAT" addr add "$NAT_PRIVATE_IP/24" dev lan1
  ip -n "$NS_PHONE" addr add "$PHONE_IP/24" dev lan0
  ip -n "$NS_PUB" link set pub0 up
  ip -n "$NS_NAT" link set wan0 up
  ip -n "$NS_NAT" link set lan1 up
  ip -n "$NS_PHONE" link set lan0 up
  ip -n "$NS_PHONE" route add default via "$NAT_PRIVATE_IP"
  # The public side has no route to 10.77.0.0/24: only the NAT's public address reaches the phone.

  in_ns "$NS_NAT" sysctl -qw net.ipv4.ip_forward=1
  in_ns "$NS_NAT" iptables -t nat -A POSTROUTING -o wan0 -j MASQUERADE "$@" ||
    skip "iptables nat table unusable here (no MASQUERADE)"
  # Address-and-port filtering: only replies to what the phone sent get in. Uninvited packets are
  # dropped before conntrack confirms an entry for them, also those addressed to the router itself,
  # so an expired mapping leaves nothing behind that could steer the next one.
  in_ns "$NS_NAT" iptables -A FORWARD -i wan0 -m conntrack --ctstate NEW -j DROP ||
    skip "iptables conntrack match unusable here"
  in_ns "$NS_NAT" iptables -A INPUT -i wan0 -m conntrack --ctstate NEW -j DROP
  in_ns "$NS_NAT" sysctl -qw net.netfilter.nf_conntrack_udp_timeout="$CONNTRACK_UDP_TIMEOUT" \
    net.netfilter.nf_conntrack_udp_timeout_stream="$CONNTRACK_UDP_TIMEOUT" ||
    skip "cannot set the conntrack UDP timeouts inside a namespace"
}

write_control_config() {
  cat >"$scratch/control.textproto" <<EOF
listen: "127.0.0.1:7400"
metrics_listen: "127.0.0.1:9400"
nat_policies {
  name: "e2e"
  keepalive_interval { seconds: $KEEPALIVE_INTERVAL }
  keepalive_failure_threshold: $KEEPALIVE_THRESHOLD
  nat_registration_expiry { seconds: 3600 }
}
EOF
}

# Mutual TLS on every hop, as deployed: a throw-away CA and one certificate per process.
pki="$scratch/pki"
tls_flags() { echo "--tls_cert=$pki/$1.crt --tls_key=$pki/$1.key --tls_ca=$pki/ca.crt"; }
make_pki() {
  [ -f "$pki/ca.crt" ] && return 0
  local script="$e2e_dir/../../scripts/pki.sh"
  bash "$script" "$pki" init >/dev/null
  bash "$script" "$pki" issue control control >/dev/null
  bash "$script" "$pki" issue worker relay-e2e >/dev/null
  bash "$script" "$pki" issue operator e2e >/dev/null
}

# shellcheck disable=SC2046 # tls_flags is a list of words without spaces
ctl() { in_ns "$NS_PUB" "$LATCHKEY_CTL_BIN" --server=127.0.0.1:7400 $(tls_flags operator-e2e) "$@"; }

start_control() {
  write_control_config
  make_pki
  # shellcheck disable=SC2046
  run_in "$NS_PUB" "$scratch/control.log" "$LATCHKEY_CONTROL_BIN" --config="$scratch/control.textproto" \
    $(tls_flags control-control)
  wait_for 20 "control ready" grep -q 'latchkey-control ready' "$scratch/control.log"
}

worker_ready() { ctl --json workers list | grep -q '"state": *"WORKER_STATE_READY"'; }

# start_relay [FLAGS...]: the relay worker, media and STUN on $RELAY_IP.
start_relay() {
  # shellcheck disable=SC2046
  run_in "$NS_PUB" "$scratch/relay.log" "$LATCHKEY_RELAY_BIN" --control=127.0.0.1:7401 --listen=127.0.0.1:7410 \
    $(tls_flags worker-relay-e2e) --min_keepalive_interval=1s \
    --metrics_listen=127.0.0.1:9410 --worker_id=relay-e2e --media_ip="$RELAY_IP" --threads=1 \
    --port_min=30000 --port_max=30199 "$@"
  relay_pid=$last_pid
  wait_for 20 "relay ready" grep -q 'latchkey-relay ready' "$scratch/relay.log"
  wait_for 20 "relay registered with control" worker_ready
}

registrar() { python3 "$e2e_dir/sip_tool.py" ctl "$scratch/registrar.sock" "$@"; }

start_registrar() {
  run_in "$NS_PUB" "$scratch/registrar.log" python3 -u "$e2e_dir/sip_tool.py" registrar --listen="$REGISTRAR" \
    --control="$scratch/registrar.sock"
  wait_for 10 "registrar listening" grep -q 'registrar listening' "$scratch/registrar.log"
}

# start_phone: sipp REGISTERs once from $PHONE_IP:$PHONE_PORT and then only answers OPTIONS. Every
# message it sees or sends is logged to phone-messages-N.log. Sets phone_pid.
phone_runs=0
start_phone() {
  phone_runs=$((phone_runs + 1))
  run_in "$NS_PHONE" "$scratch/phone-$phone_runs.log" sipp "$REGISTRAR" -sf "$e2e_dir/scenarios/phone-register.xml" \
    -oocsf "$e2e_dir/scenarios/phone-answer-options.xml" -s phone -m 1 -i "$PHONE_IP" -p "$PHONE_PORT" \
    -nostdin -trace_msg -message_file "$scratch/phone-messages-$phone_runs.log" -trace_err \
    -error_file "$scratch/phone-errors-$phone_runs.log"
  phone_pid=$last_pid
}

stop_phone() {
  kill -KILL "$phone_pid"
  wait "$phone_pid" 2>/dev/null || true
}

# OPTIONS requests the phone received, over all its runs.
phone_options_received() {
  cat "$scratch"/phone-messages-*.log 2>/dev/null | grep -c '^OPTIONS sip:' || true
}

# register_binding: waits for the phone's REGISTER at the registrar, then reports it to control as
# the PBX would (the source the registrar saw: the NAT's public mapping). Sets public_contact and
# binding_id.
register_binding() {
  wait_for 15 "the phone's REGISTER at the registrar" registrar source "$AOR"
  public_contact=$(registrar source "$AOR")
  [[ $public_contact == "$NAT_PUBLIC_IP":* ]] ||
    fail "the registrar saw the REGISTER from $public_contact, not from the NAT's public address"
  ctl --json register --aor="$AOR" --contact="<sip:phone@$PHONE_IP:$PHONE_PORT>" --source="$public_contact" \
    --registrar="$REGISTRAR" --transport=udp --expires=3600s >"$scratch/register.json" ||
    fail "register failed: $(cat "$scratch/register.json")"
  binding_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["binding"]["bindingId"])' <"$scratch/register.json")
  grep -q 'KEEPALIVE_METHOD_OPTIONS' "$scratch/register.json" ||
    fail "control planned no OPTIONS keepalive: $(cat "$scratch/register.json")"
  echo "binding $binding_id: public contact $public_contact"
}

# probe: an OPTIONS from the registrar's own socket to the binding's public contact. 0 if answered.
probe() { registrar probe "$public_contact" 3; }

# relay_metric NAME[{LABELS}]: the value from the relay's /metrics (0 when absent).
# The interpreter itself, not a version manager's shim (pyenv's costs ~0.4 s per start).
PY=$(python3 -c 'import sys; print(sys.executable)')

# json FILE EXPRESSION: a Python expression over `d`, the JSON in FILE.
json() {
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
v = eval("(" + sys.argv[2] + "\n)")  # the expression may span lines
print(json.dumps(v) if isinstance(v, (dict, list)) else v)
EOF
}
# write_sdp FILE ORIGIN IP PORT: a G.711 phone's SDP, one audio stream at IP:PORT.
write_sdp() {
  cat >"$1" <<EOF
v=0
o=$2 1 1 IN IP4 $3
s=-
c=IN IP4 $3
t=0 0
m=audio $4 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=ptime:20
a=sendrecv
EOF
}

relay_metric() { metric 9410 "$1"; }
control_metric() { metric 9400 "$1"; }
metric() {
  local port=$1 name=$2
  in_ns "$NS_PUB" curl -fsS "http://127.0.0.1:$port/metrics" |
    awk -v name="$name" '$1 == name { v = $2 } END { printf "%d\n", (v == "" ? 0 : v) }'
}

# sleep_until SECONDS_SINCE_MARK: sleeps until that many seconds have passed since `mark`.
mark() { mark_at=$SECONDS; }
sleep_until() {
  local left=$(($1 - (SECONDS - mark_at)))
  # In the background, so that a TERM is handled (cleanup) at once, not after the sleep.
  ((left <= 0)) || { sleep "$left" & wait $!; }
}

# OPTIONS the phone received that were not the registrar's probes (sip_tool.py tags those
# "tag=probe"): the keepalives that got through the NAT, over all the phone's runs.
phone_keepalives_received() {
  cat "$scratch"/phone-messages-*.log 2>/dev/null |
    awk 'BEGIN { RS = "-----------------------------------------------" }
         /message received/ && /\nOPTIONS sip:/ && !/;tag=probe/ { n++ }
         END { print n + 0 }'
}

# An OPTIONS from an outsider's socket (in the public namespace) to the phone's public contact.
outsider_probe() { in_ns "$NS_PUB" python3 "$e2e_dir/sip_tool.py" probe-from --bind="$1" --target="$public_contact"; }

# STUN to the relay's responder and REGISTER to the registrar from one phone socket; sets
# stun_mapped and registrar_seen (the public address each saw).
stun_and_register() {
  local out
  out=$(in_ns "$NS_PHONE" python3 "$e2e_dir/sip_tool.py" stun-register --bind="$PHONE_IP:$1" --stun="$RELAY_IP:3478" \
    --registrar="$REGISTRAR" --aor="sip:stun-check@$REGISTRAR_IP") || fail "stun-register: $out"
  stun_mapped=$(sed -n 's/.*stun=\([^ ]*\).*/\1/p' <<<"$out")
  registrar_seen=$(sed -n 's/.*registrar=\([^ ]*\).*/\1/p' <<<"$out")
  echo "from $PHONE_IP:$1: the relay's STUN responder saw $stun_mapped, the registrar saw $registrar_seen"
}

# The whole scene: NAT (MASQUERADE options in NAT_OPTIONS), control, the relay with RELAY_FLAGS...,
# the registrar and a registered phone.
NAT_OPTIONS=()
setup_scene() {
  step "building the NAT (${NAT_OPTIONS[*]:-port-preserving}), starting control, relay ($*), registrar, phone"
  build_nat "${NAT_OPTIONS[@]}"
  start_control
  start_relay "$@"
  start_registrar
  start_phone
  register_binding
}

# Counters whose value a failure message should show.
relay_keepalive_summary() {
  echo "relay: sent $(relay_metric latchkey_keepalives_sent_total)," \
    "2xx $(relay_metric 'latchkey_keepalive_responses_total{class="2xx"}')," \
    "misses $(relay_metric latchkey_keepalive_misses_total)," \
    "send errors $(relay_metric latchkey_keepalive_send_errors_total)," \
    "targets $(relay_metric latchkey_keepalive_targets);" \
    "phone got $(phone_keepalives_received) keepalives"
}

binding_field() {
  ctl --json bindings get "$binding_id" | python3 -c "import json,sys; b=json.load(sys.stdin)['binding']; print(b$1)"
}

# nat_mapping PRIVATE_PORT DST_IP DST_PORT: the NAT's public port for $PHONE_IP:PRIVATE_PORT talking
# to DST_IP:DST_PORT, from the router's conntrack table (exit 1 when there is no such entry).
nat_mapping() {
  in_ns "$NS_NAT" "${PY:-python3}" - "$PHONE_IP" "$@" <<'EOF'
import sys
ip, sport, dst, dport = sys.argv[1:]
for line in open("/proc/net/nf_conntrack"):
    fields = line.split()
    if "udp" not in fields:
        continue
    orig, reply = {}, {}  # the first src/dst/sport/dport are the original direction's
    for key, value in (x.split("=", 1) for x in fields if "=" in x):
        (reply if key in orig else orig).setdefault(key, value)
    if (orig.get("src"), orig.get("sport"), orig.get("dst"), orig.get("dport")) == (ip, sport, dst, dport):
        print(reply["dport"])
        sys.exit(0)
sys.exit(1)
EOF
}
