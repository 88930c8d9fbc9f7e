# shellcheck shell=bash
# Shared by tests/e2e/kamailio-*.sh: a stock Kamailio 5.6 (its rtpengine module) on loopback in front of
# an rtpengine-ng server, with sipp phones. No namespaces: everything is on 127.0.0.1, in one block of
# 64 ports chosen free for this run (see pick_ports), so runs in parallel do not clash.
#
#   NG_SERVER=latchkey (default)  latchkey-control with --ng_listen and one latchkey-relay, as
#                                 scripts/run-local.sh starts them (mutual TLS, scripts/pki.sh); the
#                                 binaries from LATCHKEY_{CONTROL,RELAY,CTL}_BIN (CMake sets them)
#   NG_SERVER=rtpengine           Debian's rtpengine in the foreground (userspace only), the reference
#
#   NG_SERVER=both                both of the above side by side (tests/e2e/ng-differential.sh), the
#                                 caller moving NG_PORT and RELAY_PORT_MIN/MAX between the two starts
#
# Root is needed: sipp plays pcap audio through a raw socket, and the tap (kamailio/ng_tool.py) reads
# every packet on lo to see the ng exchange and where the RTP really goes. KEEP_SCRATCH=1 keeps the
# scratch directory (logs, captures, sipp message logs) and prints its path.
# NG_ONLY=1: only the ng servers are used (no Kamailio, sipp or tap), so neither root nor those
# packages are required. PORT_BLOCK (default 64, a multiple of 64) widens the block of ports.
set -euo pipefail

e2e_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../shell_lib.sh
source "$e2e_dir/../shell_lib.sh"
SKIP=77
kam_dir=$e2e_dir/kamailio
NG_SERVER=${NG_SERVER:-latchkey}
NG_ONLY=${NG_ONLY:-0}
PORT_BLOCK=${PORT_BLOCK:-64}
KAMAILIO_MODULES=/usr/lib/x86_64-linux-gnu/kamailio/modules/
PCAP_SOURCE=/usr/share/sip-tester/g711a.pcap

step() { echo "---- $(date +%T) $*"; }
skip() {
  echo "SKIP: $*"
  exit "$SKIP"
}

# --- Preconditions: skip (77) where this cannot run, fail where the test setup is incomplete.
[[ $NG_ONLY == 1 ]] || ((EUID == 0)) ||
  skip "needs root (sipp plays pcap audio through a raw socket; the tap reads lo with AF_PACKET)"
case $NG_SERVER in latchkey | rtpengine | both) ;; *) fail "NG_SERVER must be latchkey, rtpengine or both, not '$NG_SERVER'" ;; esac
if [[ $NG_SERVER != rtpengine ]]; then
  for var in LATCHKEY_CONTROL_BIN LATCHKEY_RELAY_BIN LATCHKEY_CTL_BIN; do
    [[ -x ${!var:-} ]] || fail "$var is not set to an executable (run through ctest)"
  done
fi
if [[ $NG_SERVER != latchkey ]]; then
  command -v rtpengine >/dev/null || fail "rtpengine not installed (scripts/install-deps.sh installs rtpengine-daemon)"
fi
if [[ $NG_ONLY != 1 ]]; then
  command -v kamailio >/dev/null || fail "kamailio not installed (scripts/install-deps.sh installs it)"
  [[ -f $KAMAILIO_MODULES/rtpengine.so ]] || fail "no $KAMAILIO_MODULES/rtpengine.so (Debian's kamailio package has it)"
  command -v sipp >/dev/null || fail "sipp not installed (scripts/install-deps.sh installs sip-tester)"
  [[ -f $PCAP_SOURCE ]] || fail "no $PCAP_SOURCE (sip-tester ships it)"
fi
command -v python3 >/dev/null || fail "python3 not installed"
command -v setpriv >/dev/null || fail "setpriv (util-linux) not installed"
# The interpreter itself, not a version manager's shim (pyenv's costs ~0.4 s per start).
PY=$(python3 -c 'import sys; print(sys.executable)')
ng_tool() { "$PY" "$kam_dir/ng_tool.py" "$@"; }

scratch=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-kamailio-$$.XXXXXX")
pids=()
# Stopped with TERM first (Kamailio's main process then stops its children), KILL after 5 s.
term_pids=()

cleanup() {
  local rc=$?
  set +e
  local pid deadline=$((SECONDS + 5))
  for pid in "${term_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${term_pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  done
  for pid in "${pids[@]}" "${term_pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for pid in "${pids[@]}" "${term_pids[@]}"; do wait "$pid" 2>/dev/null; done
  if ((rc != 0 && rc != SKIP)); then
    local log
    for log in "$scratch"/*.log "$scratch"/*/*.log; do
      [[ -f $log ]] || continue
      echo "----- ${log#"$scratch"/} (last 30 lines)" >&2
      tail -n 30 "$log" >&2
    done
    if [[ -s $scratch/tap.jsonl ]]; then
      echo "----- the ng exchange (last 40 datagrams)" >&2
      ng_tool ng-log "$scratch/tap.jsonl" --ng="$NG_PORT" | tail -n 80 >&2
    fi
  fi
  if [[ ${KEEP_SCRATCH:-0} == 1 ]]; then
    echo "scratch directory kept: $scratch" >&2
  else
    rm -rf "$scratch"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# Scratch directories left behind by an earlier run that was killed outright (SIGKILL: no trap ran).
remove_stale_scratch latchkey-kamailio

# Processes die with this script even when it is killed outright (a CTest timeout sends SIGKILL):
# setpriv gives them a parent-death signal.
# run_bg LOG COMMAND...: COMMAND in the background, its output in LOG; sets last_pid.
run_bg() {
  local log=$1
  shift
  setpriv --pdeathsig KILL -- "$@" >"$log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
}

# --- Ports. One block of PORT_BLOCK (64; UDP and TCP free on 127.0.0.1), below the ephemeral range,
# chosen from this shell's pid and probed; the layout inside the block is fixed.
pick_ports() {
  BASE=$("$PY" - "$$" "$PORT_BLOCK" <<'EOF'
import socket, sys
pid, block = int(sys.argv[1]), int(sys.argv[2])
def free(port):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True
slots = (32000 - 12000) // block  # 12000-31999: clear of the ephemeral range (32768-60999)
for i in range(slots):
    base = 12000 + ((pid * 7 + i) % slots) * block
    if all(free(p) for p in range(base, base + block)):
        print(base)
        sys.exit(0)
sys.exit("no free block of %d ports in 12000-31999" % block)
EOF
  ) || fail "cannot find free loopback ports"
  SIP_PORT=$BASE                    # Kamailio
  UAC_PORT=$((BASE + 1))            # sipp caller
  UAS_PORT=$((BASE + 2))            # sipp callee
  NG_PORT=$((BASE + 3))             # the ng server (Latchkey's --ng_listen, or rtpengine's --listen-ng)
  CONTROL_PORT=$((BASE + 4))        # latchkey-control gRPC (PBXs, operators)
  WORKER_PORT=$((BASE + 5))         # latchkey-control gRPC (relays)
  CONTROL_METRICS_PORT=$((BASE + 6))
  RELAY_GRPC_PORT=$((BASE + 7))
  RELAY_METRICS_PORT=$((BASE + 8))
  STUN_PORT=$((BASE + 9))
  UAC_MEDIA=$((BASE + 10))          # sipp binds -mp and -mp+2
  UAS_MEDIA=$((BASE + 16))          # -rtp_echo echoes on both
  RELAY_PORT_MIN=$((BASE + 32))     # the relay's media ports: the rest of the block
  RELAY_PORT_MAX=$((BASE + PORT_BLOCK - 1))
  echo "ports: kamailio $SIP_PORT, caller $UAC_PORT (media $UAC_MEDIA), callee $UAS_PORT (media $UAS_MEDIA," \
    "$((UAS_MEDIA + 2))), ng $NG_PORT, relay media $RELAY_PORT_MIN-$RELAY_PORT_MAX"
}

in_relay_range() { (($1 >= RELAY_PORT_MIN && $1 <= RELAY_PORT_MAX)); }

# --- The tap: every UDP packet of the block on lo, ng and SIP with their payload ($scratch/tap.jsonl).
start_tap() {
  run_bg "$scratch/tap.log" "$PY" "$kam_dir/ng_tool.py" tap --ports="$BASE-$((BASE + PORT_BLOCK - 1))" --ng="$NG_PORT" \
    --sip="$SIP_PORT,$UAC_PORT,$UAS_PORT" --out="$scratch/tap.jsonl"
  tap_pid=$last_pid
  wait_for 10 "the tap on lo" grep -q 'tap ready' "$scratch/tap.log"
}

# stop_tap: flushes and closes the capture (then it can be read as a whole).
stop_tap() {
  kill -TERM "$tap_pid" 2>/dev/null || true
  wait "$tap_pid" 2>/dev/null || true
}

# --- Latchkey: control with the ng front door, one relay, as scripts/run-local.sh.
pki="$scratch/pki"
tls_flags() { echo "--tls_cert=$pki/$1.crt --tls_key=$pki/$1.key --tls_ca=$pki/ca.crt"; }
make_pki() {
  [ -f "$pki/ca.crt" ] && return 0
  local script="$e2e_dir/../../scripts/pki.sh"
  bash "$script" "$pki" init >/dev/null
  bash "$script" "$pki" issue control control >/dev/null
  bash "$script" "$pki" issue worker relay-kamailio >/dev/null
  bash "$script" "$pki" issue operator kamailio-e2e >/dev/null
}

# shellcheck disable=SC2046 # tls_flags is a list of words without spaces
ctl() { "$LATCHKEY_CTL_BIN" --server="127.0.0.1:$CONTROL_PORT" $(tls_flags operator-kamailio-e2e) "$@"; }

# start_control [EXTRA FLAGS...]: with --ng_listen unless NG_FLAGS is set (an array; empty for a
# control without the front door).
start_control() {
  make_pki
  if ! declare -p NG_FLAGS >/dev/null 2>&1; then
    NG_FLAGS=(--ng_listen="127.0.0.1:$NG_PORT")
  fi
  # shellcheck disable=SC2046
  run_bg "$scratch/control.log" "$LATCHKEY_CONTROL_BIN" --listen="127.0.0.1:$CONTROL_PORT" \
    --worker_listen="127.0.0.1:$WORKER_PORT" --metrics_listen="127.0.0.1:$CONTROL_METRICS_PORT" \
    "${NG_FLAGS[@]}" $(tls_flags control-control) "$@"
  wait_for 20 "control ready" grep -q 'latchkey-control ready' "$scratch/control.log"
}

worker_ready() { ctl --json workers list | grep -q '"state": *"WORKER_STATE_READY"'; }

start_relay() {
  # shellcheck disable=SC2046
  run_bg "$scratch/relay.log" "$LATCHKEY_RELAY_BIN" --control="127.0.0.1:$WORKER_PORT" \
    --listen="127.0.0.1:$RELAY_GRPC_PORT" --metrics_listen="127.0.0.1:$RELAY_METRICS_PORT" \
    --worker_id=relay-kamailio --media_ip=127.0.0.1 --port_min="$RELAY_PORT_MIN" --port_max="$RELAY_PORT_MAX" \
    --stun_listen="127.0.0.1:$STUN_PORT" --threads=1 --keepalive_allow_loopback --keepalive_allow_private \
    $(tls_flags worker-relay-kamailio) "$@"
  wait_for 20 "relay ready" grep -q 'latchkey-relay ready' "$scratch/relay.log"
  wait_for 20 "relay registered with control" worker_ready
}

# --- rtpengine, the reference: userspace forwarding, debug log (every ng command), its default
# 30 s delete delay.
start_rtpengine() {
  run_bg "$scratch/rtpengine.log" rtpengine --config-file=none --foreground --log-stderr --log-level=7 --table=-1 \
    --interface=127.0.0.1 --listen-ng="127.0.0.1:$NG_PORT" --port-min="$RELAY_PORT_MIN" --port-max="$RELAY_PORT_MAX" \
    --timeout=60 --no-fallback
}

start_ng_server() {
  case $NG_SERVER in
    latchkey)
      start_control
      start_relay
      ;;
    rtpengine) start_rtpengine ;;
  esac
  wait_for 10 "the ng server to answer ping on 127.0.0.1:$NG_PORT" ng_tool ping "127.0.0.1:$NG_PORT"
}

# --- Kamailio: the template rendered for this run, checked, run in the foreground as root (no -u/-g:
# it keeps its privileges), its pid file and runtime directory under scratch. KAMAILIO_NETNS: run it
# (and the check, and the ping that waits for it) inside that network namespace, answering SIP on
# KAMAILIO_IP (default 127.0.0.1) port SIP_PORT.
in_kamailio_netns() {
  if [[ -n ${KAMAILIO_NETNS:-} ]]; then ip netns exec "$KAMAILIO_NETNS" "$@"; else "$@"; fi
}
start_kamailio() {
  local template=${1:-$kam_dir/test.cfg.in} sip=${KAMAILIO_IP:-127.0.0.1}:$SIP_PORT
  kam_cfg=$scratch/kamailio.cfg
  # KAMAILIO_NG_PORT: where Kamailio sends ng (a proxy in front of the server), else the server.
  sed -e "s/@SIP_PORT@/$SIP_PORT/g" -e "s/@NG_PORT@/${KAMAILIO_NG_PORT:-$NG_PORT}/g" -e "s/@UAS_PORT@/$UAS_PORT/g" "$template" >"$kam_cfg"
  ! grep -n '@[A-Z_]*@' "$kam_cfg" || fail "unrendered placeholders in $kam_cfg"
  in_kamailio_netns kamailio -c -f "$kam_cfg" >"$scratch/kamailio-check.log" 2>&1 ||
    fail "kamailio -c rejects the config: $(tail -n 20 "$scratch/kamailio-check.log")"
  mkdir -p "$scratch/kamailio-run"
  setpriv --pdeathsig TERM -- ${KAMAILIO_NETNS:+ip netns exec "$KAMAILIO_NETNS"} kamailio -f "$kam_cfg" -DD -E \
    -m 64 -M 8 -Y "$scratch/kamailio-run" -P "$scratch/kamailio-run/kamailio.pid" >"$scratch/kamailio.log" 2>&1 &
  kamailio_pid=$!
  term_pids+=("$kamailio_pid")
  wait_for 15 "Kamailio answering SIP on $sip" in_kamailio_netns "$PY" "$kam_dir/ng_tool.py" sip-ping "$sip"
}

# --- Calls. run_call NAME UAS_ARGS -- UAC_ARGS: the callee sipp (-rtp_echo) and then the caller sipp,
# in $scratch/NAME (holding pcap/g711a.pcap), one call each, bounded. Their message logs are
# NAME/{uac,uas}.msg, parsed to NAME/{uac,uas}.jsonl. MID_CALL, when set, is a command run once 3 s
# after the caller sent its first ACK (while media flows).
MID_CALL=""
run_call() {
  local name=$1 dir=$scratch/$1
  shift
  local uas=() uac=()
  while (($#)) && [[ $1 != -- ]]; do
    uas+=("$1")
    shift
  done
  shift
  uac=("$@")
  mkdir -p "$dir/pcap"
  cp "$PCAP_SOURCE" "$dir/pcap/g711a.pcap"
  cp /usr/share/sip-tester/dtmf_2833_1.pcap "$dir/pcap/" 2>/dev/null || true
  local common=(-i 127.0.0.1 -m 1 -nostdin -timeout 40s -timeout_error)
  (cd "$dir" && exec setpriv --pdeathsig KILL -- timeout 60 sipp "${common[@]}" -p "$UAS_PORT" -mp "$UAS_MEDIA" \
    -rtp_echo -trace_msg -message_file "$dir/uas.msg" -trace_err -error_file "$dir/uas-errors.log" "${uas[@]}") \
    >"$dir/uas.out" 2>&1 &
  local uas_pid=$!
  pids+=("$uas_pid")
  wait_for 10 "the callee sipp on $UAS_PORT" udp_bound "$UAS_PORT"
  (cd "$dir" && exec setpriv --pdeathsig KILL -- timeout 60 sipp "127.0.0.1:$SIP_PORT" "${common[@]}" -p "$UAC_PORT" \
    -mp "$UAC_MEDIA" -trace_msg -message_file "$dir/uac.msg" -trace_err -error_file "$dir/uac-errors.log" "${uac[@]}") \
    >"$dir/uac.out" 2>&1 &
  local uac_pid=$!
  pids+=("$uac_pid")
  if [[ -n $MID_CALL ]]; then
    wait_for 15 "the caller's ACK" grep -q '^ACK ' "$dir/uac.msg"
    sleep 3 &
    wait $!
    $MID_CALL "$name"
  fi
  local rc=0
  wait "$uac_pid" || rc=$?
  ((rc == 0)) || fail "$name: the caller sipp failed (exit $rc): $(grep -v '^ *$' "$dir/uac.out" | tail -n 25)"
  # The callee lingers for its timewait after the BYE.
  rc=0
  wait "$uas_pid" || rc=$?
  ((rc == 0)) || fail "$name: the callee sipp failed (exit $rc): $(grep -v '^ *$' "$dir/uas.out" | tail -n 25)"
  ng_tool messages "$dir/uac.msg" >"$dir/uac.jsonl"
  ng_tool messages "$dir/uas.msg" >"$dir/uas.jsonl"
}

udp_bound() { [[ -n $(ss -Hlun "sport = :$1") ]]; }

# msg_field NAME SIDE DIR START CSEQ EXPR: EXPR (Python, over `m`, the message) of the first message
# in NAME/SIDE.jsonl sent or received (DIR) whose start line begins with START and whose CSeq is CSEQ
# ("" matches any). Prints "none" when there is no such message.
msg_field() {
  "$PY" - "$scratch/$1/$2.jsonl" "$3" "$4" "$5" "$6" <<'EOF'
import json, sys
path, direction, start, cseq, expr = sys.argv[1:]
for line in open(path):
    m = json.loads(line)
    if m["dir"] == direction and m["start"].startswith(start) and (not cseq or m.get("cseq") == cseq):
        v = eval(expr)
        print(json.dumps(v) if isinstance(v, (dict, list)) else v)
        break
else:
    print("none")
EOF
}

# sdp_port NAME SIDE DIR START CSEQ: the first m= port of that message's SDP ("none" without SDP).
sdp_port() { msg_field "$@" "m['sdp_m'][0][1] if m.get('sdp_m') else 'none'"; }

# ng_commands CALL_ID: the call's ng requests (retransmissions once) as "command[from-tag>to-tag]:result"
# words, in order, from the tap (stop_tap first).
ng_summary() { ng_tool ng-summary "$scratch/tap.jsonl" --ng="$NG_PORT" --call-id="$1"; }
ng_commands() {
  ng_summary "$1" | "$PY" -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print("%s:%s" % (r["command"], (r["reply"] or {}).get("result", "NO-REPLY")), end=" ")'
}

# flows [AFTER [BEFORE]]: packet counts per "SPORT>DPORT" (JSON) of the media seen on lo.
flows() {
  local args=()
  [[ -n ${1:-} ]] && args+=(--after="$1")
  [[ -n ${2:-} ]] && args+=(--before="$2")
  ng_tool flows "$scratch/tap.jsonl" "${args[@]}"
}

# flow JSON SPORT DPORT: the count of one flow in a flows result (0 if none).
flow() { "$PY" -c 'import json, sys; print(json.loads(sys.argv[1]).get("%s>%s" % (sys.argv[2], sys.argv[3]), 0))' "$@"; }

# rtpstat_line CALL_ID: what Kamailio logged for $rtpstat before relaying the BYE.
rtpstat_line() { grep -F "KLT rtpstat call-id=$1:" "$scratch/kamailio.log" | head -n 1 | sed 's/.*KLT rtpstat call-id=[^ ]*: //'; }
