#!/usr/bin/env bash
# The whole story over the NAT lab (lib.sh: network namespaces, MASQUERADE with address-and-port
# filtering, UDP conntrack timeout 10 s), with a stock Kamailio 5.6 running the operator example
# deploy/integrations/kamailio/kamailio.cfg (only its site settings changed) and its registration
# integration latchkey_registrar.py (app_python3, Debian's python3-grpcio, mutual TLS):
#
#   1. the phone behind the NAT (10.77.0.2, sipp) REGISTERs through Kamailio at 203.0.113.1:5060;
#      Kamailio reports it to latchkey-control (AllocateBinding), which finds it behind NAT; save()
#      stores the effective Contact (the NAT's public address) as the contact's received address and
#      grants Latchkey's shortened expiry (120 s of the 3600 asked for)
#   2. the phone sends nothing of its own; the relay pings it every 5 s with OPTIONS sent from
#      Kamailio's own address (raw-socket keepalives), which is all that keeps its NAT mapping
#   3. after the NAT's UDP timeout has passed twice (22 s), a public sipp caller (203.0.113.20) calls
#      the phone's AOR through Kamailio: lookup("location") sends the INVITE to the NAT's public
#      address, which still leads to the phone, and the call is answered
#   4. the call's media goes through Latchkey's relay via the ng front door (offer, answer, delete):
#      the phone's SDP names 10.77.0.2:40000 but it sends from port 40002, so the relay only ever sees
#      it as the NAT's public mapping; media flows both ways (> 90 % each way)
#
# Skips (77) without root or network namespaces. About 45 s. KEEP_SCRATCH=1 keeps the scratch
# directory (logs, sipp message logs, the rendered kamailio.cfg) as /tmp/latchkey-kamailio-nat-kept-PID.
# shellcheck source=kamailio_lib.sh
source "$(dirname "$0")/kamailio_lib.sh" # Kamailio and the sipp message helpers (sets its own scratch)
kam_scratch=$scratch
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh" # the NAT lab; its scratch, control/relay/ctl helpers and cleanup win
rm -rf "$kam_scratch"

CALLER_IP=203.0.113.20
UAS_PORT=0 # (unused: kamailio_lib.sh's test.cfg.in placeholder)
NG_PORT=2223 # the ng front door, on 127.0.0.1 of the public namespace (Kamailio's side)
SIP_PORT=5060
NAT_EXPIRY=120         # control's nat_registration_expiry: what a NATed phone is granted
PHONE_SDP_PORT=40000   # named in the phone's SDP (tests/e2e/kamailio/phone-nat.xml), never used
PHONE_MEDIA_PORT=40002 # where the phone really sends its media from
CALLER_MEDIA_PORT=6000 # the caller's, as its SDP says (its sipp's own RTP sockets are moved to 16000)
MEDIA_SECONDS=3

# Kamailio goes first (TERM, its main process stops the children), then the lab's cleanup.
eval "lab_$(declare -f cleanup)"
cleanup() {
  local rc=$? pid deadline=$((SECONDS + 5))
  set +e
  for pid in "${term_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${term_pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [[ ${KEEP_SCRATCH:-0} == 1 ]]; then
    cp -a "$scratch" "/tmp/latchkey-kamailio-nat-kept-$$" && echo "scratch kept: /tmp/latchkey-kamailio-nat-kept-$$" >&2
  fi
  (exit "$rc")
  lab_cleanup
}
trap cleanup EXIT

# json FILE EXPRESSION: a Python expression over `d`, the JSON in FILE.
json() { "$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); v = eval(sys.argv[2]); print(json.dumps(v) if isinstance(v, (dict, list)) else v)' "$@"; }
percent_ok() { (($2 > 0 && $1 * 100 > $2 * 90)); }
# heard_ok HEARD SENT FROM EXPECTED_FROM: > 90 % heard, all of it from EXPECTED_FROM.
heard_ok() { percent_ok "$1" "$2" && test "$3" = "$4"; }
# like TEXT PATTERN: TEXT matches the glob PATTERN.
# shellcheck disable=SC2053 # a glob, on purpose
like() { [[ $1 == $2 ]]; }

# register PORT CONTACT EXPIRES: one REGISTER of sip:phone2@$REGISTRAR_IP from $PHONE_IP:PORT (behind
# the NAT) with that Contact and Expires header, retransmitted until a final answer (8 s at most);
# prints "STATUS CONTACTS" of the answer (its Contact values joined by " | ", or "-"). One Call-ID,
# CSeq rising (the registrar ignores a REGISTER whose CSeq is not above the stored one).
register() {
  in_ns "$NS_PHONE" "$PY" - "$PHONE_IP" "$@" "$REGISTRAR" <<'EOF'
import socket, sys, time
ip, port, contact, expires, registrar = sys.argv[1:]
seq = int(time.time() * 100) % 2000000000
host, rport = registrar.rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((ip, int(port)))
s.settimeout(0.5)
aor = "sip:phone2@%s" % host
msg = ("REGISTER sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s:%s;branch=z9hG4bK-reg%s;rport\r\nMax-Forwards: 70\r\n"
       "From: <%s>;tag=r%s\r\nTo: <%s>\r\nCall-ID: phone2-reg@%s\r\nCSeq: %s REGISTER\r\nContact: %s\r\n"
       "Expires: %s\r\nUser-Agent: latchkey-e2e-phone2\r\nContent-Length: 0\r\n\r\n"
       % (registrar, ip, port, seq, aor, seq, aor, ip, seq, contact, expires)).encode()
# Kamailio's first gRPC call in a fresh worker (importing grpc, the TLS handshake) can take a while on
# a loaded machine.
deadline = time.time() + 8
while time.time() < deadline:
    s.sendto(msg, (host, int(rport)))
    try:
        data = s.recv(65535).decode("latin-1")
    except socket.timeout:
        continue
    if not data.startswith("SIP/2.0 "):
        continue  # a request (the relay's keepalive OPTIONS), not the answer
    status = data.split("\r\n", 1)[0].split(" ", 2)[1]
    if status.startswith("1"):
        continue
    contacts = [l.partition(":")[2].strip() for l in data.split("\r\n") if l.lower().startswith(("contact:", "m:"))]
    print(status, " | ".join(contacts) or "-")
    sys.exit(0)
print("none -")
EOF
}

# binding_count AOR: how many bindings Latchkey holds for AOR.
binding_count() {
  ctl --json bindings list --aor="$1" | "$PY" -c 'import json, sys; print(len(json.load(sys.stdin).get("bindings", [])))'
}

# ---------------------------------------------------------------------------------------------------
step "building the NAT, starting control (ng front door on 127.0.0.1:$NG_PORT), relay (keepalives from" \
  "$REGISTRAR_IP), Kamailio at $REGISTRAR"
build_nat
ip -n "$NS_PUB" addr add "$CALLER_IP/24" dev pub0
write_control_config
sed -i "s/nat_registration_expiry { seconds: [0-9]* }/nat_registration_expiry { seconds: $NAT_EXPIRY }/" \
  "$scratch/control.textproto"
grep -q "nat_registration_expiry { seconds: $NAT_EXPIRY }" "$scratch/control.textproto" ||
  fail "cannot set nat_registration_expiry in $(cat "$scratch/control.textproto")"
make_pki
bash "$e2e_dir/../../scripts/pki.sh" "$pki" issue pbx kamailio >/dev/null
# shellcheck disable=SC2046
run_in "$NS_PUB" "$scratch/control.log" "$LATCHKEY_CONTROL_BIN" --config="$scratch/control.textproto" \
  $(tls_flags control-control) --ng_listen="127.0.0.1:$NG_PORT"
control_pid=$last_pid
wait_for 20 "control ready" grep -q 'latchkey-control ready' "$scratch/control.log"
start_relay --keepalive_source_ips="$REGISTRAR_IP"
wait_for 10 "the ng front door to answer ping" in_ns "$NS_PUB" "$PY" "$kam_dir/ng_tool.py" ping "127.0.0.1:$NG_PORT"

# The ng exchange, as Kamailio and control see it (lo of the public namespace).
run_in "$NS_PUB" "$scratch/tap.log" "$PY" "$kam_dir/ng_tool.py" tap --ports="$NG_PORT-$NG_PORT" --ng="$NG_PORT" \
  --sip= --out="$scratch/tap.jsonl"
tap_pid=$last_pid
wait_for 10 "the tap on lo" grep -q 'tap ready' "$scratch/tap.log"

# latchkey/v1/*_pb2.py for the integration, as an operator generates them (README).
mkdir -p "$scratch/py"
protoc -I "$e2e_dir/../../proto" --python_out="$scratch/py" "$e2e_dir/../../proto"/latchkey/v1/*.proto ||
  fail "protoc cannot generate the Python messages"

# The operator example with its site settings for this lab; nothing else of it changes.
cfg=$e2e_dir/../../deploy/integrations/kamailio/kamailio.cfg
sed -e "s|^#!substdef \"!SIP_LISTEN!.*|#!substdef \"!SIP_LISTEN!udp:$REGISTRAR!g\"|" \
  -e "s|^#!substdef \"!LATCHKEY_NG!.*|#!substdef \"!LATCHKEY_NG!udp:127.0.0.1:$NG_PORT!g\"|" \
  -e "s|^#!substdef \"!LATCHKEY_REGISTRAR_PY!.*|#!substdef \"!LATCHKEY_REGISTRAR_PY!$(dirname "$cfg")/latchkey_registrar.py!g\"|" \
  "$cfg" >"$scratch/kamailio.cfg.in"
for setting in SIP_LISTEN LATCHKEY_NG LATCHKEY_REGISTRAR_PY; do
  grep -q "^#!substdef \"!$setting!" "$scratch/kamailio.cfg.in" || fail "no $setting substdef in $cfg"
done
changed=$(diff "$cfg" "$scratch/kamailio.cfg.in" | grep '^[<>]' | grep -cv '^[<>] #!substdef' || true)
[[ $changed == 0 ]] || fail "rendering $cfg changed more than its substdef lines"
export LATCHKEY_CONTROL=127.0.0.1:7400 LATCHKEY_CA=$pki/ca.crt LATCHKEY_CERT=$pki/pbx-kamailio.crt \
  LATCHKEY_KEY=$pki/pbx-kamailio.key LATCHKEY_PROTO_PATH=$scratch/py LATCHKEY_TIMEOUT_MS=1000
KAMAILIO_NETNS=$NS_PUB KAMAILIO_IP=$REGISTRAR_IP start_kamailio "$scratch/kamailio.cfg.in"

# ---------------------------------------------------------------------------------------------------
step "1. the phone behind the NAT ($PHONE_IP:$PHONE_PORT) registers $AOR through Kamailio"
mkdir -p "$scratch/call"
run_in "$NS_PHONE" "$scratch/phone-1.log" sipp "$REGISTRAR" -sf "$e2e_dir/scenarios/phone-register.xml" \
  -oocsf "$kam_dir/phone-nat.xml" -s phone -m 1 -i "$PHONE_IP" -p "$PHONE_PORT" -nostdin -trace_msg \
  -message_file "$scratch/phone-messages-1.log" -trace_err -error_file "$scratch/phone-errors-1.log"
phone_registered() {
  [[ -f $scratch/phone-messages-1.log ]] && ng_tool messages "$scratch/phone-messages-1.log" | "$PY" -c '
import json, sys
sys.exit(0 if any(m["start"].startswith("SIP/2.0 200") and m.get("cseq") == "1 REGISTER"
                  for m in map(json.loads, sys.stdin)) else 1)'
}
wait_for 15 "Kamailio's 200 OK to the phone's REGISTER" phone_registered
mark
registered_mapping=$(nat_mapping "$PHONE_PORT" "$REGISTRAR_IP" 5060) ||
  fail "no conntrack entry for the phone's REGISTER ($PHONE_IP:$PHONE_PORT -> $REGISTRAR)"
public_contact=$NAT_PUBLIC_IP:$registered_mapping
echo "the NAT maps the phone's SIP socket to $public_contact"

cp "$scratch/phone-messages-1.log" "$scratch/call/phone-register.msg"
ng_tool messages "$scratch/call/phone-register.msg" >"$scratch/call/phone-register.jsonl"
# The 200 OK's Contact as the phone received it: Kamailio lists the stored contact with its expiry and
# the received address save() stored.
reg_contact=$("$PY" - "$scratch/call/phone-register.msg" <<'EOF'
import sys
text = open(sys.argv[1], encoding="latin-1").read()
for block in text.split("-----------------------------------------------")[1:]:
    msg = block.partition("\n\n")[2].replace("\r\n", "\n")
    if msg.startswith("SIP/2.0 200") and "\nCSeq: 1 REGISTER" in msg:
        print(" ".join(l.partition(":")[2].strip() for l in msg.split("\n") if l.lower().startswith("contact:")))
        break
EOF
)
echo "Kamailio's 200 OK to the REGISTER: Contact: $reg_contact"
ctl --json bindings list --aor="$AOR" >"$scratch/bindings.json" 2>&1 || fail "bindings list: $(cat "$scratch/bindings.json")"
read -r b_state b_effective b_expires b_keepalive b_source b_registrar b_owner < <(json "$scratch/bindings.json" \
  "' '.join([d['bindings'][0]['verdict']['state'], d['bindings'][0]['effectiveContact'], d['bindings'][0]['expires'],
             d['bindings'][0]['keepalive']['method'],
             '%(ip)s:%(port)s' % d['bindings'][0]['source'], '%(ip)s:%(port)s' % d['bindings'][0]['registrar'],
             d['bindings'][0].get('owner', '-')]) if len(d.get('bindings', [])) == 1 else 'none'")
echo "Latchkey's binding: $b_state, effective contact $b_effective, expires $b_expires, keepalive $b_keepalive," \
  "source $b_source, registrar $b_registrar, owner $b_owner"
check "Latchkey holds one binding for $AOR, behind NAT, owned by Kamailio's identity ($b_owner)" \
  test "$b_state $b_owner" = "NAT_STATE_BEHIND_NAT pbx/kamailio"
check "... from the NAT's public address $public_contact, received by Kamailio at $REGISTRAR" \
  test "$b_source $b_registrar" = "$public_contact $REGISTRAR"
check "... effective contact $b_effective names the NAT's public address" \
  grep -qF "@$public_contact" <<<"$b_effective"
check "... expiry shortened to ${NAT_EXPIRY}s ($b_expires), OPTIONS keepalives ($b_keepalive)" \
  test "$b_expires $b_keepalive" = "${NAT_EXPIRY}s KEEPALIVE_METHOD_OPTIONS"
check "Kamailio stored the effective contact: its 200 OK lists received=\"sip:$public_contact\"" \
  grep -qF "received=\"sip:$public_contact\"" <<<"$reg_contact"
check "Kamailio granted Latchkey's expiry: its 200 OK lists expires=$NAT_EXPIRY (the phone asked 3600)" \
  grep -qE "(^|;)expires=$NAT_EXPIRY(;|$| )" <<<"$reg_contact"
check "the integration logged the verdict (Kamailio's log)" \
  grep -qE "latchkey: REGISTER $AOR from $public_contact: .*behind NAT .*received sip:$public_contact" \
  "$scratch/kamailio.log"

# ---------------------------------------------------------------------------------------------------
wait_seconds=$((2 * CONNTRACK_UDP_TIMEOUT + 2))
step "2. ${wait_seconds} s (the NAT's UDP timeout twice): the phone sends nothing of its own, the relay" \
  "pings it every ${KEEPALIVE_INTERVAL} s from $REGISTRAR"
sleep_until "$wait_seconds"
keepalives=$(phone_keepalives_received)
sent=$(relay_metric latchkey_keepalives_sent_total)
answered=$(relay_metric 'latchkey_keepalive_responses_total{class="2xx"}')
misses=$(relay_metric latchkey_keepalive_misses_total)
relay_keepalive_summary
mapping_now=$(nat_mapping "$PHONE_PORT" "$REGISTRAR_IP" 5060 || echo none)
check "the phone received >= 3 keepalive OPTIONS through the NAT in ${wait_seconds} s (got $keepalives)" \
  test "$keepalives" -ge 3
check "the relay sent >= 3 keepalives, >= 3 answered 2xx, none missed (sent $sent, 2xx $answered, misses $misses)" \
  test "$sent" -ge 3 -a "$answered" -ge 3 -a "$misses" -eq 0
check "the phone's NAT mapping is still $public_contact after ${wait_seconds} s (conntrack: $NAT_PUBLIC_IP:$mapping_now)" \
  test "$mapping_now" = "$registered_mapping"
check "the phone sent nothing but keepalive answers since its REGISTER (one REGISTER in its log)" \
  test "$(grep -c '^REGISTER ' "$scratch/phone-messages-1.log")" = 1

# ---------------------------------------------------------------------------------------------------
step "3. the public caller ($CALLER_IP) calls $AOR through Kamailio"
call_start=$SECONDS
(cd "$scratch/call" && exec setpriv --pdeathsig KILL -- ip netns exec "$NS_PUB" timeout 60 sipp "$REGISTRAR" \
  -sf "$kam_dir/caller-nat.xml" -s phone -m 1 -i "$CALLER_IP" -p 5060 -mp 16000 -d 9000 -nostdin -timeout 40s -timeout_error \
  -trace_msg -message_file "$scratch/call/caller.msg" -trace_err -error_file "$scratch/call/caller-errors.log") \
  >"$scratch/caller.log" 2>&1 &
caller_pid=$!
pids+=("$caller_pid")
wait_for 15 "the caller's ACK (the call answered)" grep -q '^ACK ' "$scratch/call/caller.msg"
cp "$scratch/phone-messages-1.log" "$scratch/call/phone.msg"
ng_tool messages "$scratch/call/caller.msg" >"$scratch/call/caller.jsonl"
ng_tool messages "$scratch/call/phone.msg" >"$scratch/call/phone.jsonl"
call_id=$(msg_field call caller sent INVITE "" "m['call_id']")
phone_relay_port=$(sdp_port call phone received INVITE "")
phone_relay_ip=$(msg_field call phone received INVITE "" "m['sdp_c'][0].split()[-1] if m.get('sdp_c') else 'none'")
caller_relay_port=$(sdp_port call caller received "SIP/2.0 200" "1 INVITE")
caller_relay_ip=$(msg_field call caller received "SIP/2.0 200" "1 INVITE" "m['sdp_c'][0].split()[-1] if m.get('sdp_c') else 'none'")
phone_sdp=$(sdp_port call phone sent "SIP/2.0 200" "1 INVITE")
echo "call $call_id: the phone is told $phone_relay_ip:$phone_relay_port, the caller $caller_relay_ip:$caller_relay_port;" \
  "the phone's SDP names $phone_sdp"
check "the INVITE reached the phone through the NAT, $((call_start - mark_at)) s after its REGISTER" \
  test "$(msg_field call phone received INVITE "" "m['start']")" != none
check "the phone answered 200 with its own SDP (port $phone_sdp)" test "$phone_sdp" = "$PHONE_SDP_PORT"
check "the INVITE reaching the phone names the relay ($phone_relay_ip:$phone_relay_port), not the caller" \
  test "$phone_relay_ip" = "$RELAY_IP" -a "$phone_relay_port" != "$CALLER_MEDIA_PORT"
check "the 200 reaching the caller names the relay ($caller_relay_ip:$caller_relay_port), not the phone" \
  test "$caller_relay_ip" = "$RELAY_IP" -a "$caller_relay_port" != "$PHONE_SDP_PORT"

# ---------------------------------------------------------------------------------------------------
step "4. ${MEDIA_SECONDS} s of media both ways: the phone from $PHONE_IP:$PHONE_MEDIA_PORT (its SDP said" \
  "$PHONE_SDP_PORT), the caller from $CALLER_IP:$CALLER_MEDIA_PORT"
start_at=$("$PY" -c 'import time; print(time.time() + 1.0)')
peer=("$PY" "$e2e_dir/rtp_peer.py" --duration="$MEDIA_SECONDS" --start-at="$start_at" --linger=0.5)
run_in "$NS_PHONE" "$scratch/media-phone.log" "${peer[@]}" --bind="$PHONE_IP:$PHONE_MEDIA_PORT" \
  --to="$RELAY_IP:$phone_relay_port" --ssrc=0x0A11CE01 --seq=1000
phone_rtp=$last_pid
run_in "$NS_PUB" "$scratch/media-caller.log" "${peer[@]}" --bind="$CALLER_IP:$CALLER_MEDIA_PORT" \
  --to="$RELAY_IP:$caller_relay_port" --ssrc=0x0B0B0B02 --seq=5000
caller_rtp=$last_pid
wait "$phone_rtp" || fail "rtp_peer (phone) failed: $(cat "$scratch/media-phone.log")"
wait "$caller_rtp" || fail "rtp_peer (caller) failed: $(cat "$scratch/media-caller.log")"
read -r phone_sent phone_heard phone_from caller_sent caller_heard caller_from < <("$PY" - \
  "$scratch/media-phone.log" "$scratch/media-caller.log" <<'EOF'
import json, sys
p, c = (json.loads([l for l in open(f) if l.startswith("{")][-1]) for f in sys.argv[1:3])
print(p["sent"], p["received"], ",".join(p["received_from"]) or "-", c["sent"], c["received"],
      ",".join(c["received_from"]) or "-")
EOF
)
echo "the phone sent $phone_sent, heard $phone_heard from $phone_from; the caller sent $caller_sent, heard" \
  "$caller_heard from $caller_from"
check "the caller heard > 90 % of the phone's packets ($caller_heard of $phone_sent), from $RELAY_IP:$caller_relay_port" \
  heard_ok "$caller_heard" "$phone_sent" "$caller_from" "$RELAY_IP:$caller_relay_port"
check "the phone heard > 90 % of the caller's packets ($phone_heard of $caller_sent), from $RELAY_IP:$phone_relay_port" \
  heard_ok "$phone_heard" "$caller_sent" "$phone_from" "$RELAY_IP:$phone_relay_port"

phone_media_mapping=$(nat_mapping "$PHONE_MEDIA_PORT" "$RELAY_IP" "$phone_relay_port" || echo none)
ctl --json sessions list >"$scratch/sessions.json" 2>&1 || fail "sessions list: $(cat "$scratch/sessions.json")"
read -r s_owner s_caller_latched s_phone_latched s_phone_sdp < <(json "$scratch/sessions.json" "
(lambda s: ' '.join([s.get('owner', '-')] + [
    ('%(ip)s:%(port)s' % leg['stats']['latchedSource']) if leg.get('stats', {}).get('latchedSource') else 'none'
    for leg in (s['caller'], s['callee'])] + ['%(ip)s:%(port)s' % s['callee']['remote'][0]['sdpRtp']]))(
  [s for s in d.get('sessions', []) if s['callId'] == '$call_id'][0])" 2>&1)
echo "session of $call_id (owner $s_owner): the caller leg latched onto $s_caller_latched, the phone's onto" \
  "$s_phone_latched (its SDP: $s_phone_sdp; the NAT maps its media socket to $NAT_PUBLIC_IP:$phone_media_mapping)"
check "the relay sees the phone from the NAT's public mapping $NAT_PUBLIC_IP:$phone_media_mapping, not its SDP's $s_phone_sdp" \
  test "$s_phone_latched" = "$NAT_PUBLIC_IP:$phone_media_mapping" -a "$phone_media_mapping" != "$PHONE_SDP_PORT"
check "the relay sees the caller at $CALLER_IP:$CALLER_MEDIA_PORT ($s_caller_latched)" \
  test "$s_caller_latched" = "$CALLER_IP:$CALLER_MEDIA_PORT"
check "the session belongs to the ng front door's identity ($s_owner)" test "$s_owner" = pbx/ng

# ---------------------------------------------------------------------------------------------------
step "BYE; the call's ng exchange"
rc=0
wait "$caller_pid" || rc=$?
((rc == 0)) || fail "the caller sipp failed (exit $rc): $(grep -v '^ *$' "$scratch/caller.log" | tail -n 25)"
wait_for 10 "the phone's 200 to the BYE" grep -q '^CSeq: 2 BYE' "$scratch/phone-messages-1.log"
sleep 0.5
kill -TERM "$tap_pid" 2>/dev/null || true
wait "$tap_pid" 2>/dev/null || true
commands=$(ng_commands "$call_id")
echo "ng requests of the call: $commands"
check "the call went through the ng front door: offer, answer, delete, all ok" \
  test "$commands" = "offer:ok answer:ok delete:ok "

# ---------------------------------------------------------------------------------------------------
step "5. a second phone ($PHONE_IP:5070) registers, unregisters (Expires: 0), registers again and" \
  "unregisters with Contact: *; then, with control stopped, registers once more (fail open)"
aor2="sip:phone2@$REGISTRAR_IP"
contact2="<sip:phone2@$PHONE_IP:5070>"
r=$(register 5070 "$contact2" 3600)
n=$(binding_count "$aor2")
mapped2=$(nat_mapping 5070 "$REGISTRAR_IP" 5060 || echo none)
echo "REGISTER: $r; Latchkey: $n binding(s)"
check "phone2 registered behind NAT (received=\"sip:$NAT_PUBLIC_IP:$mapped2\", expires=$NAT_EXPIRY; 1 binding: $n)" \
  like "$r / $n" "200 *expires=$NAT_EXPIRY*received=\"sip:$NAT_PUBLIC_IP:$mapped2\"* / 1"
r=$(register 5070 "$contact2" 0)
n=$(binding_count "$aor2")
echo "REGISTER Expires: 0: $r; Latchkey: $n binding(s)"
check "Expires: 0 unregistered it in Kamailio (200, no contact left) and in Latchkey (no binding)" \
  test "$r / $n" = "200 - / 0"
r=$(register 5070 "$contact2" 3600)
r_star=$(register 5070 "*" 0)
n=$(binding_count "$aor2")
echo "REGISTER again: $r; REGISTER Contact: * Expires: 0: $r_star; Latchkey: $n binding(s)"
check "Contact: * released the AOR in Kamailio (200, no contact left) and in Latchkey (no binding)" \
  like "$r / $r_star / $n" "200 * / 200 - / 0"
kill -KILL "$control_pid"
wait "$control_pid" 2>/dev/null || true
r=$(register 5070 "$contact2" 3600)
echo "REGISTER with control stopped: $r"
check "control stopped: the REGISTER is saved as plain Kamailio would (nathelper's received=, the asked 3600 s)" \
  like "$r" "200 *expires=3600*received=\"sip:$NAT_PUBLIC_IP:$mapped2\"*"
check "... and Kamailio logged one line saying so" \
  test "$(grep -c "latchkey: REGISTER of $aor2 from $NAT_PUBLIC_IP:$mapped2 saved without Latchkey: " \
    "$scratch/kamailio.log")" = 1

((failures == 0)) || fail "$failures check(s) failed"
pass "Kamailio + Latchkey over the NAT: registered behind NAT, mapping kept ${wait_seconds} s by keepalives, called," \
  "media both ways; unregister, Contact *, fail open (${SECONDS} s)"
