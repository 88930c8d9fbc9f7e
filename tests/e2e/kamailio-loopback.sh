#!/usr/bin/env bash
# A stock Kamailio 5.6 (Debian's package, its rtpengine module) uses the ng server in place of
# rtpengine, on loopback, with sipp phones (kamailio_lib.sh). NG_SERVER=latchkey (default):
# latchkey-control's ng front door (--ng_listen) and one latchkey-relay; NG_SERVER=rtpengine: Debian's
# rtpengine, the reference. Kamailio calls rtpengine_manage("replace-origin trust-address ICE=remove")
# on every SDP-carrying message and logs $rtpstat before relaying a BYE (kamailio/test.cfg.in). Three
# calls, one after the other, each from a fresh caller and callee sipp:
#   1. basic: sipp's built-in uac_pcap -> uas -rtp_echo. Each side's SDP names the relay's ports, not the
#      other phone's; RTP goes caller -> relay -> callee and its echo callee -> relay -> caller (seen on
#      lo; never phone to phone); $rtpstat logged non-zero totals; the ng exchange was exactly
#      offer, answer, query, delete, all answered ok, with the tags the fact sheet says.
#   2. re-INVITE from the callee 5 s into the call, moving its media port (kamailio/uas-reinvite.xml,
#      uac-reinvite.xml): the re-INVITE's SDP reaching the caller names the same relay port as the
#      first answer (Latchkey; for rtpengine, which re-allocates without its port-latching flag, a relay
#      port: REINVITE_KEEPS_PORTS=0|1 overrides), the callee's 200 the same relay port as the first
#      offer; afterwards media flows both ways through the relay to the callee's new port; ng
#      offer/answer with the callee's tag as from-tag.
#   3. late offer (kamailio/uas-late-offer.xml, uac-late-offer.xml): INVITE without SDP, the offer in
#      the 200 (an ng offer with the tags swapped), the answer in the ACK (an ng answer); media both ways.
# With Latchkey the session is also checked over gRPC (latchkeyctl): mid-call, both legs counted
# packets in and out; after the BYE, the session is ended or has its delayed release pending.
# About 40 s. Needs root (kamailio_lib.sh). KEEP_SCRATCH=1 keeps the captures.
# shellcheck source=kamailio_lib.sh
source "$(dirname "$0")/kamailio_lib.sh"

# percent_ok GOT SENT: GOT > 90 % of SENT (and SENT > 0).
percent_ok() { (($2 > 0 && $1 * 100 > $2 * 90)); }
relay_port_ok() { [[ $1 =~ ^[0-9]+$ ]] && in_relay_range "$1" && [[ $1 != "$2" ]]; }

# --- Latchkey's own view, over gRPC.
# latchkey_sessions NAME WHEN: the sessions of NAME's call in $scratch/NAME/sessions-WHEN.json (a JSON
# list; the call-id is read from the caller's message log).
latchkey_sessions() {
  local name=$1 when=$2 call_id
  call_id=$(ng_tool messages "$scratch/$name/uac.msg" | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.readline())["call_id"])')
  ctl --json sessions list >"$scratch/$name/sessions-list-$when.json" 2>&1 ||
    fail "sessions list: $(cat "$scratch/$name/sessions-list-$when.json")"
  "$PY" - "$scratch/$name/sessions-list-$when.json" "$call_id" >"$scratch/$name/sessions-$when.json" <<'EOF'
import json, sys
found = []
for line in open(sys.argv[1]):
    line = line.strip()
    if not line.startswith("{"):
        continue
    d = json.loads(line)
    for s in d.get("sessions", [d.get("session")] if "session" in d else []):
        if s and s.get("callId") == sys.argv[2]:
            found.append(s)
print(json.dumps(found))
EOF
  # A listing carries no relay figures; `sessions get` asks the relay for them.
  local ids id
  ids=$("$PY" -c 'import json,sys; print(" ".join(s["sessionId"] for s in json.load(open(sys.argv[1])) if s.get("state") != "SESSION_STATE_ENDED"))' \
    "$scratch/$name/sessions-$when.json")
  for id in $ids; do
    ctl --json sessions get "$id" >"$scratch/$name/session-$when-$id.json" 2>&1 || true
  done
  "$PY" - "$scratch/$name/sessions-$when.json" "$scratch/$name" "$when" >"$scratch/$name/sessions-$when.tmp" <<'EOF'
import json, os, sys
out = []
for s in json.load(open(sys.argv[1])):
    path = os.path.join(sys.argv[2], "session-%s-%s.json" % (sys.argv[3], s["sessionId"]))
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                d = json.loads(line)
                s = d.get("session", d)
                break
    out.append(s)
print(json.dumps(out))
EOF
  mv "$scratch/$name/sessions-$when.tmp" "$scratch/$name/sessions-$when.json"
}
latchkey_mid_call() { latchkey_sessions "$1" mid; }
[[ $NG_SERVER == latchkey ]] && MID_CALL=latchkey_mid_call

# latchkey_checks NAME: mid-call both legs counted packets both ways; after the BYE the session is
# ended, has a delayed release pending, or is gone.
latchkey_checks() {
  local name=$1
  [[ $NG_SERVER == latchkey ]] || return 0
  latchkey_sessions "$name" after
  local mid after
  mid=$("$PY" - "$scratch/$name/sessions-mid.json" <<'EOF'
import json, sys
ss = json.load(open(sys.argv[1]))
if len(ss) != 1:
    print("%d sessions" % len(ss)); sys.exit()
s = ss[0]
c, e = s["caller"].get("stats", {}), s["callee"].get("stats", {})
print("owner=%s state=%s caller in/out %s/%s callee in/out %s/%s" % (s.get("owner"), s["state"],
      c.get("packetsIn", 0), c.get("packetsOut", 0), e.get("packetsIn", 0), e.get("packetsOut", 0)))
EOF
  )
  echo "$name: mid-call, Latchkey: $mid"
  check "$name: Latchkey mid-call: one session owned by pbx/ng, answered, packets in and out on both legs" \
    "$PY" -c 'import re, sys; m = re.fullmatch(r"owner=pbx/ng state=SESSION_STATE_ANSWERED caller in/out (\d+)/(\d+) callee in/out (\d+)/(\d+)", sys.argv[1]); sys.exit(0 if m and all(int(x) > 0 for x in m.groups()) else 1)' "$mid"
  after=$("$PY" - "$scratch/$name/sessions-after.json" <<'EOF'
import json, sys
ss = json.load(open(sys.argv[1]))
print(" ".join("%s%s" % (s["state"], "+release_at" if s.get("releaseAt") else "") for s in ss) or "gone")
EOF
  )
  echo "$name: after the BYE, Latchkey: $after"
  check "$name: Latchkey after the BYE: the session is ended or its delayed release is pending ($after)" \
    "$PY" -c 'import sys; w = sys.argv[1].split(); sys.exit(0 if w == ["gone"] or all(x.startswith("SESSION_STATE_ENDED") or x.endswith("+release_at") for x in w) else 1)' "$after"
}

# rtpengine_checks CALL_ID: its log shows the delete of the call.
rtpengine_checks() {
  local name=$1 call_id=$2
  [[ $NG_SERVER == rtpengine ]] || return 0
  check "$name: rtpengine logged the delete of $call_id" \
    grep -qE "\[${call_id}[^]]*\]: .*Received command 'delete'" "$scratch/rtpengine.log"
}

# media_checks NAME CALLER_MEDIA CALLER_RELAY CALLEE_MEDIA CALLEE_RELAY [AFTER [BEFORE]]: on lo (between
# AFTER and BEFORE, epoch seconds, "" for no bound):
# caller -> CALLER_RELAY -> (relay) CALLEE_RELAY -> callee, the callee's echo back the same way, each
# hop > 90 % of the one before, and nothing from phone to phone.
media_checks() {
  local name=$1 caller=$2 caller_relay=$3 callee=$4 callee_relay=$5 after=${6:-} before=${7:-}
  local f
  f=$(flows "$after" "$before")
  local c2r r2e e2r r2c direct
  c2r=$(flow "$f" "$caller" "$caller_relay")
  r2e=$(flow "$f" "$callee_relay" "$callee")
  e2r=$(flow "$f" "$callee" "$callee_relay")
  r2c=$(flow "$f" "$caller_relay" "$caller")
  direct=$(($(flow "$f" "$caller" "$callee") + $(flow "$f" "$callee" "$caller")))
  echo "$name: RTP: caller $caller -> relay $caller_relay: $c2r;" \
    "relay $callee_relay -> callee $callee: $r2e; echo $callee -> $callee_relay: $e2r;" \
    "relay $caller_relay -> caller $caller: $r2c; phone to phone: $direct"
  check "$name: the caller sent RTP to the relay ($c2r packets)" test "$c2r" -gt 100
  check "$name: the relay passed > 90 % of it on to the callee ($r2e of $c2r)" percent_ok "$r2e" "$c2r"
  check "$name: the callee's echo went to the relay ($e2r of $r2e)" percent_ok "$e2r" "$r2e"
  check "$name: the relay passed > 90 % of the echo back to the caller ($r2c of $e2r)" percent_ok "$r2c" "$e2r"
  check "$name: no RTP went from phone to phone ($direct)" test "$direct" -eq 0
}

# rtpstat_checks NAME CALL_ID
rtpstat_checks() {
  local name=$1 call_id=$2 line
  line=$(rtpstat_line "$call_id")
  echo "$name: \$rtpstat before the BYE: ${line:-<not logged>}"
  check "$name: \$rtpstat logged non-zero RTP totals" \
    "$PY" -c 'import re, sys; m = re.search(r"RTP: (\d+) bytes, (\d+) packets", sys.argv[1]); sys.exit(0 if m and int(m.group(1)) > 0 and int(m.group(2)) > 0 else 1)' "$line"
}

# ng_checks NAME CALL_ID CALLER_TAG CALLEE_TAG EXPECTED: the call's ng requests as
# "command(from>to):result" words, the tags shown as caller/callee/-, equal EXPECTED.
ng_checks() {
  local name=$1 call_id=$2 caller_tag=$3 callee_tag=$4 expected=$5 got
  got=$(ng_summary "$call_id" | "$PY" -c '
import json, sys
names = {sys.argv[1]: "caller", sys.argv[2]: "callee", None: "-"}
out = []
for line in sys.stdin:
    r = json.loads(line)
    out.append("%s(%s>%s):%s" % (r["command"], names.get(r["from_tag"], r["from_tag"]),
               names.get(r["to_tag"], r["to_tag"]), (r["reply"] or {}).get("result", "NO-REPLY")))
print(" ".join(out))' "$caller_tag" "$callee_tag")
  echo "$name: ng: $got"
  check "$name: the ng exchange was: $expected" test "$got" = "$expected"
}

pick_ports
step "the tap on lo, the ng server ($NG_SERVER) on 127.0.0.1:$NG_PORT, Kamailio on 127.0.0.1:$SIP_PORT"
start_tap
start_ng_server
# Kamailio reaches the ng server through a proxy that holds back the first reply to the offer of a
# call whose Call-ID starts with "retx-" (scenario 4), so that Kamailio retransmits it.
NG_PROXY_PORT=$((BASE + 24))
run_bg "$scratch/ng-proxy.log" "$PY" "$kam_dir/ng_tool.py" delay-proxy --listen="$NG_PROXY_PORT" \
  --target="$NG_PORT" --delay-ms=700 --call-id-prefix=retx-
pids+=("$last_pid")
wait_for 10 "the ng delay proxy" grep -q "delay-proxy ready" "$scratch/ng-proxy.log"
KAMAILIO_NG_PORT=$NG_PROXY_PORT
start_kamailio

# ---------------------------------------------------------------------------------------------------
step "1. basic call: sipp uac_pcap -> Kamailio -> sipp uas -rtp_echo"
run_call basic -sn uas -- -sn uac_pcap
call_id=$(msg_field basic uac sent INVITE "" "m['call_id']")
caller_tag=$(msg_field basic uac sent INVITE "" "m['from_tag']")
callee_tag=$(msg_field basic uac received "SIP/2.0 200" "1 INVITE" "m['to_tag']")
caller_media=$(sdp_port basic uac sent INVITE "")
callee_media=$(sdp_port basic uas sent "SIP/2.0 200" "1 INVITE")
callee_relay=$(sdp_port basic uas received INVITE "")
caller_relay=$(sdp_port basic uac received "SIP/2.0 200" "1 INVITE")
echo "basic: call $call_id; the caller offered $caller_media and was told $caller_relay;" \
  "the callee answered $callee_media and was told $callee_relay"
check "basic: the INVITE reaching the callee names a relay port ($callee_relay), not the caller's ($caller_media)" \
  relay_port_ok "$callee_relay" "$caller_media"
check "basic: the 200 reaching the caller names a relay port ($caller_relay), not the callee's ($callee_media)" \
  relay_port_ok "$caller_relay" "$callee_media"
latchkey_checks basic

# ---------------------------------------------------------------------------------------------------
step "2. re-INVITE from the callee, moving its media to $((UAS_MEDIA + 2))"
run_call reinvite -sf "$kam_dir/uas-reinvite.xml" -- -sf "$kam_dir/uac-reinvite.xml"
r_call_id=$(msg_field reinvite uac sent INVITE "" "m['call_id']")
r_caller_tag=$(msg_field reinvite uac sent INVITE "" "m['from_tag']")
r_callee_tag=$(msg_field reinvite uac received "SIP/2.0 200" "1 INVITE" "m['to_tag']")
r_caller_media=$(sdp_port reinvite uac sent INVITE "")
r_callee_media=$(sdp_port reinvite uas sent "SIP/2.0 200" "1 INVITE")
r_callee_relay=$(sdp_port reinvite uas received INVITE "")
r_caller_relay=$(sdp_port reinvite uac received "SIP/2.0 200" "1 INVITE")
r_callee_media2=$(sdp_port reinvite uas sent INVITE "101 INVITE")
r_caller_relay2=$(sdp_port reinvite uac received INVITE "101 INVITE")
r_callee_relay2=$(sdp_port reinvite uas received "SIP/2.0 200" "101 INVITE")
echo "reinvite: call $r_call_id; first: caller $r_caller_media told $r_caller_relay, callee $r_callee_media told" \
  "$r_callee_relay; re-INVITE: callee now $r_callee_media2, the caller is told $r_caller_relay2, the callee" \
  "$r_callee_relay2"
check "reinvite: the INVITE reaching the callee names a relay port ($r_callee_relay), not the caller's" \
  relay_port_ok "$r_callee_relay" "$r_caller_media"
check "reinvite: the 200 reaching the caller names a relay port ($r_caller_relay), not the callee's" \
  relay_port_ok "$r_caller_relay" "$r_callee_media"
check "reinvite: the callee's re-INVITE SDP moved its media ($r_callee_media -> $r_callee_media2)" \
  test "$r_callee_media2" = $((UAS_MEDIA + 2))
# Latchkey keeps both legs' relay ports on a re-offer. rtpengine 10.5 (the reference) does only with its
# port-latching flag: without it, as here, it gives the caller a new port when the callee's port
# changed, and the caller simply follows; there it is checked to be a relay port.
if [[ ${REINVITE_KEEPS_PORTS:-$([[ $NG_SERVER == latchkey ]] && echo 1 || echo 0)} == 1 ]]; then
  check "reinvite: the re-INVITE reaching the caller names the original relay port ($r_caller_relay2 = $r_caller_relay)" \
    test "$r_caller_relay2" = "$r_caller_relay"
else
  check "reinvite: the re-INVITE reaching the caller names a relay port ($r_caller_relay2; first $r_caller_relay)" \
    relay_port_ok "$r_caller_relay2" "$r_callee_media2"
fi
check "reinvite: the 200 to the re-INVITE reaching the callee names the original relay port ($r_callee_relay2 = $r_callee_relay)" \
  test "$r_callee_relay2" = "$r_callee_relay"
latchkey_checks reinvite

# ---------------------------------------------------------------------------------------------------
step "3. late offer: INVITE without SDP, the offer in the 200, the answer in the ACK"
run_call late -sf "$kam_dir/uas-late-offer.xml" -- -sf "$kam_dir/uac-late-offer.xml"
l_call_id=$(msg_field late uac sent INVITE "" "m['call_id']")
l_caller_tag=$(msg_field late uac sent INVITE "" "m['from_tag']")
l_callee_tag=$(msg_field late uac received "SIP/2.0 200" "1 INVITE" "m['to_tag']")
l_invite_sdp=$(sdp_port late uas received INVITE "")
l_callee_media=$(sdp_port late uas sent "SIP/2.0 200" "1 INVITE")
l_caller_relay=$(sdp_port late uac received "SIP/2.0 200" "1 INVITE")
l_caller_media=$(sdp_port late uac sent ACK "")
l_callee_relay=$(sdp_port late uas received ACK "")
echo "late: call $l_call_id; the callee offered $l_callee_media, the caller was told $l_caller_relay; the caller" \
  "answered $l_caller_media in the ACK, the callee was told $l_callee_relay"
check "late: the INVITE reached the callee without SDP" test "$l_invite_sdp" = none
check "late: the 200 (offer) reaching the caller names a relay port ($l_caller_relay), not the callee's" \
  relay_port_ok "$l_caller_relay" "$l_callee_media"
check "late: the ACK (answer) reaching the callee names a relay port ($l_callee_relay), not the caller's" \
  relay_port_ok "$l_callee_relay" "$l_caller_media"
latchkey_checks late

# ---------------------------------------------------------------------------------------------------
step "4. a retransmitted offer: its first reply held back 700 ms (rtpengine_tout_ms is 500), Kamailio sends it again"
# The caller does not retransmit its INVITE (-nr): Kamailio, held up to 500 ms by the ng timeout,
# would otherwise see a second INVITE on a loaded machine and send a second offer of its own.
run_call retx -sn uas -- -sn uac_pcap -nr -cid_str "retx-%u-%p@%s"
x_call_id=$(msg_field retx uac sent INVITE "" "m['call_id']")
x_caller_tag=$(msg_field retx uac sent INVITE "" "m['from_tag']")
x_callee_tag=$(msg_field retx uac received "SIP/2.0 200" "1 INVITE" "m['to_tag']")
x_caller_media=$(sdp_port retx uac sent INVITE "")
x_callee_media=$(sdp_port retx uas sent "SIP/2.0 200" "1 INVITE")
x_callee_relay=$(sdp_port retx uas received INVITE "")
x_caller_relay=$(sdp_port retx uac received "SIP/2.0 200" "1 INVITE")
echo "retx: call $x_call_id; the caller offered $x_caller_media and was told $x_caller_relay;" \
  "the callee answered $x_callee_media and was told $x_callee_relay"
check "retx: the proxy held back the first reply to the offer" grep -q "held back the first reply" "$scratch/ng-proxy.log"
check "retx: the INVITE reaching the callee names a relay port ($x_callee_relay), not the caller's" \
  relay_port_ok "$x_callee_relay" "$x_caller_media"
check "retx: the 200 reaching the caller names a relay port ($x_caller_relay), not the callee's" \
  relay_port_ok "$x_caller_relay" "$x_callee_media"
latchkey_checks retx

# ---------------------------------------------------------------------------------------------------
step "what went over the wire: ng exchange, RTP on lo, \$rtpstat"
stop_tap
ng_tool ng-log "$scratch/tap.jsonl" --ng="$NG_PORT" >"$scratch/ng-exchange.txt"

# 1. basic
media_checks basic "$caller_media" "$caller_relay" "$callee_media" "$callee_relay"
rtpstat_checks basic "$call_id"
ng_checks basic "$call_id" "$caller_tag" "$callee_tag" \
  "offer(caller>-):ok answer(caller>callee):ok query(caller>callee):ok delete(caller>-):ok"
rtpengine_checks basic "$call_id"

# 2. re-INVITE: media before it, and from its ng answer on (+ 0.2 s) to the new callee port.
reinvite_at=$(ng_summary "$r_call_id" | "$PY" -c '
import json, sys
rs = [json.loads(l) for l in sys.stdin]
answers = [r for r in rs if r["command"] == "answer"]
print(answers[1]["t"] + 0.2 if len(answers) > 1 else "")')
[[ -n $reinvite_at ]] || fail "reinvite: no ng answer for the re-INVITE"
media_checks reinvite "$r_caller_media" "$r_caller_relay" "$r_callee_media" "$r_callee_relay" "" "$reinvite_at"
media_checks reinvite-after "$r_caller_media" "$r_caller_relay2" "$r_callee_media2" "$r_callee_relay" "$reinvite_at"
rtpstat_checks reinvite "$r_call_id"
ng_checks reinvite "$r_call_id" "$r_caller_tag" "$r_callee_tag" \
  "offer(caller>-):ok answer(caller>callee):ok offer(callee>caller):ok answer(callee>caller):ok query(caller>callee):ok delete(caller>-):ok"
rtpengine_checks reinvite "$r_call_id"

# 3. late offer
media_checks late "$l_caller_media" "$l_caller_relay" "$l_callee_media" "$l_callee_relay"
rtpstat_checks late "$l_call_id"
ng_checks late "$l_call_id" "$l_caller_tag" "$l_callee_tag" \
  "offer(callee>caller):ok answer(callee>caller):ok query(caller>callee):ok delete(caller>-):ok"
rtpengine_checks late "$l_call_id"

# 4. the retransmitted offer: the server got it twice (one cookie) and answered the same bytes twice.
retx=$(ng_tool retransmissions "$scratch/tap.jsonl" --ng="$NG_PORT" --call-id="$x_call_id")
echo "retx: offers as the server saw them: $retx"
check "retx: one offer cookie, received twice, answered twice with the same bytes" \
  "$PY" -c 'import json, sys; r = [json.loads(l) for l in sys.argv[1].splitlines() if l]; sys.exit(0 if len(r) == 1 and r[0]["requests"] == 2 and r[0]["replies"] == 2 and r[0]["distinct_replies"] == 1 else 1)' "$retx"
media_checks retx "$x_caller_media" "$x_caller_relay" "$x_callee_media" "$x_callee_relay"
ng_checks retx "$x_call_id" "$x_caller_tag" "$x_callee_tag" \
  "offer(caller>-):ok answer(caller>callee):ok query(caller>callee):ok delete(caller>-):ok"
rtpengine_checks retx "$x_call_id"

((failures == 0)) || fail "$failures check(s) failed"
pass "Kamailio with $NG_SERVER as its rtpengine: basic call, callee re-INVITE, late offer, retransmitted offer (${SECONDS} s)"
