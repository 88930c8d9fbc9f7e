#!/usr/bin/env bash
# Media through a real NAT. The caller's phone is behind the router (MASQUERADE, address-and-port
# filtering); its SDP names its private 10.77.0.2:$PHONE_SDP_PORT but it really sends RTP from another
# local port, so the relay only ever sees the NAT's public mapping. The callee is on the public side.
# The call is placed as a PBX would, with `latchkeyctl sessions offer|answer` (signalling source: the
# NAT's public address as the registrar sees it), and then:
#   (a) the caller leg latches onto 203.0.113.2:<mapped port> (read from the router's conntrack) and
#       media flows both ways (each side hears > 90 % of what the other sent in 3 s);
#   (b) NAT rebinding: mid-stream, without a pause, the phone continues the same stream (same SSRC,
#       next sequence) from a new local port, so the NAT maps a new public port; the leg re-latches at
#       once (relatch_count 1, within 1 s of the first packet from the new mapping) and media flows
#       both ways again;
#   (c) outsiders on the public side (203.0.113.66) spray RTP at both relay ports, one of them
#       spoofing the phone's SSRC 50 packets ahead of it: nothing reaches them, nothing of theirs
#       reaches the phones, the latches stay where they are, and the relay counts every packet as a
#       not_signaling_ip / wrong_source drop. The SSRC-spoofing one is refused because control
#       latches a NATed caller by signaling_source (its packets are not from the signalling IP);
#       under first_packet it would pass as a NAT rebinding and take the leg over.
# No registrar or sipp phone here: the signalling is only what control is told. About 20 s.
source "$(dirname "$0")/lib.sh"

CALLEE_IP=203.0.113.20
CALLEE_PORT=6000
OUTSIDER_IP=203.0.113.66
PHONE_SDP_PORT=40000  # named in the caller's SDP, never used
PHONE_PORT_1=40002    # where the phone really sends from
PHONE_PORT_2=40004    # ... after the rebinding
PHONE_SSRC=0x0A11CE01
CALLEE_SSRC=0x0B0B0B02
OUTSIDER_SSRC=0x0BAD0003
PHASE_SECONDS=3
CALL_ID="media-$$@e2e"




# get_session NAME: the session as control sees it now, in $scratch/session-NAME.json; sets
# {caller,callee}_latched (IP:PORT or none), {caller,callee}_relatches, caller_latched_at (epoch s).
get_session() {
  local file="$scratch/session-$1.json"
  ctl --json sessions get "$session_id" >"$file" 2>&1 || fail "sessions get $session_id: $(cat "$file")"
  eval "$("$PY" - "$file" <<'EOF'
import calendar, json, sys, time
s = json.load(open(sys.argv[1]))["session"]
for side in ("caller", "callee"):
    stats = s[side].get("stats", {})
    src = stats.get("latchedSource")
    print("%s_latched=%s" % (side, "%s:%s" % (src["ip"], src["port"]) if src else "none"))
    print("%s_relatches=%d" % (side, stats.get("relatchCount", 0)))
stamp = s["caller"].get("stats", {}).get("latchedAt", "1970-01-01T00:00:00Z")
whole, _, frac = stamp.rstrip("Z").partition(".")
seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))
print("caller_latched_at=%.6f" % seconds)
EOF
)"
}

# nat_public_port LOCAL_PORT REMOTE_PORT: the public port the router maps $PHONE_IP:LOCAL_PORT to
# when it talks to $RELAY_IP:REMOTE_PORT, from its conntrack table.
nat_public_port() { nat_mapping "$1" "$RELAY_IP" "$2"; }

# percent_ok GOT SENT: GOT > 90 % of SENT (and SENT > 0).
percent_ok() { (($2 > 0 && $1 * 100 > $2 * 90)); }

# media NAME SECONDS PHONE_PORT [RTP_PEER FLAGS...]: the phone (from PHONE_PORT) and the callee stream
# to their relay ports for SECONDS, both continuing their sequence numbers; the flags go to the
# phone's rtp_peer.py. With OUTSIDERS=1 three outsiders spray meanwhile. Each peer's JSON result is
# in $scratch/NAME-{phone,callee,outsider-?}.log. Sets {phone,callee}_{sent,heard,first_send,late,
# from,clean} (clean=1: heard only the other side), after a --rebind also {phone,callee}_after_{sent,
# heard} (from the rebinding on) and phone_rebind_send, and advances the sequence numbers.
OUTSIDERS=0
phone_seq=1000
callee_seq=5000
media() {
  local name=$1 seconds=$2 port=$3
  shift 3
  local start_at
  # All start together, a moment after the slowest of them can have started.
  start_at=$("$PY" -c 'import time; print(time.time() + 1.0)')
  local peer=("$PY" "$e2e_dir/rtp_peer.py" --duration="$seconds" --start-at="$start_at" --linger=0.5)
  local jobs=()
  run_in "$NS_PHONE" "$scratch/$name-phone.log" "${peer[@]}" --bind="$PHONE_IP:$port" --to="$caller_relay" \
    --ssrc="$PHONE_SSRC" --seq="$phone_seq" "$@"
  jobs+=("$last_pid")
  run_in "$NS_PUB" "$scratch/$name-callee.log" "${peer[@]}" --bind="$CALLEE_IP:$CALLEE_PORT" --to="$callee_relay" \
    --ssrc="$CALLEE_SSRC" --seq="$callee_seq"
  jobs+=("$last_pid")
  if ((OUTSIDERS)); then
    # a: a stranger's stream at the caller's relay port, at twice the phone's rate.
    run_in "$NS_PUB" "$scratch/$name-outsider-a.log" "${peer[@]}" --bind="$OUTSIDER_IP:7000" --to="$caller_relay" \
      --ssrc="$OUTSIDER_SSRC" --seq=1 --rate=100
    jobs+=("$last_pid")
    # b: the phone's own SSRC, always 50 packets ahead of it: what a NAT rebinding looks like.
    run_in "$NS_PUB" "$scratch/$name-outsider-b.log" "${peer[@]}" --bind="$OUTSIDER_IP:7002" --to="$caller_relay" \
      --ssrc="$PHONE_SSRC" --seq=$((phone_seq + 50))
    jobs+=("$last_pid")
    # c: a stranger at the callee's relay port.
    run_in "$NS_PUB" "$scratch/$name-outsider-c.log" "${peer[@]}" --bind="$OUTSIDER_IP:7004" --to="$callee_relay" \
      --ssrc="$OUTSIDER_SSRC" --seq=1 --rate=100
    jobs+=("$last_pid")
  fi
  local job
  for job in "${jobs[@]}"; do wait "$job" || fail "rtp_peer ($name) failed: $(cat "$scratch/$name"-*.log)"; done
  eval "$("$PY" - "$scratch/$name-phone.log" "$scratch/$name-callee.log" "$caller_relay" "$callee_relay" <<'EOF'
import json, sys
phone, callee = (json.loads([l for l in open(p) if l.startswith("{")][-1]) for p in sys.argv[1:3])
for me, other, name, relay in ((phone, callee, "phone", sys.argv[3]), (callee, phone, "callee", sys.argv[4])):
    seqs = me["received_seqs"]
    # Heard only the other side: its SSRC, from this side's relay port, each of its sequence
    # numbers at most once, none it did not send.
    clean = (set(me["ssrcs"]) <= {other["ssrc"]} and set(me["received_from"]) <= {relay} and
             len(set(seqs)) == len(seqs) and all(other["first_seq"] <= s < other["next_seq"] for s in seqs))
    values = {"sent": me["sent"], "heard": me["received"], "first_send": me["first_send"], "late": me["late"],
              "next_seq": me["next_seq"], "clean": int(clean), "from": json.dumps(me["received_from"])}
    for key, value in values.items():
        print("%s_%s='%s'" % (name, key, value))
if "rebind_send" in phone:
    # Both streams run on the same schedule: from the rebinding on, each sent all but the first
    # sent_before_rebind packets. The callee tells the phone's by their sequence numbers.
    before = phone["sent_before_rebind"]
    print("phone_rebind_send=%.6f" % phone["rebind_send"])
    print("phone_after_sent=%d" % (phone["sent"] - before))
    print("phone_after_heard=%d" % (phone["received"] - phone["received_before_rebind"]))
    print("callee_after_sent=%d" % (callee["sent"] - before))
    print("callee_after_heard=%d" % sum(1 for s in callee["received_seqs"] if s >= phone["first_seq"] + before))
EOF
)"
  phone_seq=$phone_next_seq
  callee_seq=$callee_next_seq
  echo "$name: phone sent $phone_sent (started ${phone_late}s late), heard $phone_heard from $phone_from;" \
    "callee sent $callee_sent (started ${callee_late}s late), heard $callee_heard from $callee_from"
}

# check_media NAME: both ways > 90 %, and each side heard only the other.
check_media() {
  local name=$1
  check "$name: the callee heard > 90 % of the phone's packets ($callee_heard of $phone_sent)" \
    percent_ok "$callee_heard" "$phone_sent"
  check "$name: the phone heard > 90 % of the callee's packets ($phone_heard of $callee_sent)" \
    percent_ok "$phone_heard" "$callee_sent"
  check "$name: the phone heard only the callee's stream (its SSRC, once each, from $caller_relay)" \
    test "$phone_clean" = 1
  check "$name: the callee heard only the phone's stream (its SSRC, once each, from $callee_relay)" \
    test "$callee_clean" = 1
}

# outsider_field LETTER EXPRESSION: from outsider LETTER's result of phase c.
outsider_field() {
  "$PY" -c "import json, sys; d = json.loads([l for l in open(sys.argv[1]) if l.startswith('{')][-1]); print($2)" \
    "$scratch/c-outsider-$1.log"
}

drops() { relay_metric "latchkey_relay_drops_total{reason=\"$1\"}"; }

step "building the NAT (port-preserving), starting control and relay; callee $CALLEE_IP, outsider $OUTSIDER_IP"
build_nat
ip -n "$NS_PUB" addr add "$CALLEE_IP/24" dev pub0
ip -n "$NS_PUB" addr add "$OUTSIDER_IP/24" dev pub0

start_control
start_relay
run_in "$NS_PUB" "$scratch/watch.log" "$LATCHKEY_CTL_BIN" --server=127.0.0.1:7400 $(tls_flags operator-e2e) --json watch sessions \
  --call_id="$CALL_ID" --duration=120s
wait_for 10 "watch sessions subscribed" grep -q 'latchkeyctl: watching' "$scratch/watch.log"

step "offer: the phone's SDP names $PHONE_IP:$PHONE_SDP_PORT, its INVITE came from $NAT_PUBLIC_IP:5060"
write_sdp "$scratch/offer.sdp" phone "$PHONE_IP" "$PHONE_SDP_PORT"
ctl --json sessions offer --call_id="$CALL_ID" --from_tag=phone-1 --sdp="$scratch/offer.sdp" \
  --signaling_source="$NAT_PUBLIC_IP:5060" >"$scratch/offer.json" 2>&1 ||
  fail "sessions offer: $(cat "$scratch/offer.json")"
read -r session_id callee_relay caller_mode < <(json "$scratch/offer.json" \
  "' '.join([d['session']['sessionId'], '%(ip)s:%(port)s' % d['session']['callee']['relay'][0]['rtp'],
             d['session']['caller']['verdict']['state'] + '/' + d['session']['caller']['latchingMode']])")
echo "session $session_id; the callee is to send to $callee_relay; caller leg: $caller_mode"
check "the SDP for the callee names the relay ($callee_relay), not the phone's private address" \
  test "$(json "$scratch/offer.json" "'c=IN IP4 $RELAY_IP\n' in d['sdp'] and
                                       'm=audio ${callee_relay#*:} ' in d['sdp'] and
                                       'c=IN IP4 $PHONE_IP' not in d['sdp']")" = True
check "control: the caller is behind NAT, latching signaling_source" \
  test "$caller_mode" = NAT_STATE_BEHIND_NAT/LATCHING_MODE_SIGNALING_SOURCE

step "answer: the callee's public SDP $CALLEE_IP:$CALLEE_PORT"
write_sdp "$scratch/answer.sdp" callee "$CALLEE_IP" "$CALLEE_PORT"
ctl --json sessions answer "$session_id" --to_tag=callee-1 --sdp="$scratch/answer.sdp" \
  --signaling_source="$CALLEE_IP:5060" >"$scratch/answer.json" 2>&1 ||
  fail "sessions answer: $(cat "$scratch/answer.json")"
read -r caller_relay state < <(json "$scratch/answer.json" \
  "'%(ip)s:%(port)s' % d['session']['caller']['relay'][0]['rtp'] + ' ' + d['session']['state']")
echo "the phone is to send to $caller_relay"
check "session answered" test "$state" = SESSION_STATE_ANSWERED
check "the SDP for the caller names the relay ($caller_relay), not the callee" \
  test "$(json "$scratch/answer.json" "'c=IN IP4 $RELAY_IP\n' in d['sdp'] and
                                         'm=audio ${caller_relay#*:} ' in d['sdp'] and
                                         'c=IN IP4 $CALLEE_IP' not in d['sdp'] and
                                         'm=audio $CALLEE_PORT ' not in d['sdp']")" = True

step "(a) $PHASE_SECONDS s of media: the phone sends from $PHONE_IP:$PHONE_PORT_1 (its SDP said $PHONE_SDP_PORT)"
media a "$PHASE_SECONDS" "$PHONE_PORT_1"
mapped_1=$(nat_public_port "$PHONE_PORT_1" "${caller_relay#*:}") ||
  fail "no conntrack entry for $PHONE_IP:$PHONE_PORT_1 -> $caller_relay in the router"
get_session a
echo "the router maps $PHONE_IP:$PHONE_PORT_1 to $NAT_PUBLIC_IP:$mapped_1; the caller leg latched onto $caller_latched"
check "(a) the caller leg latched onto the NAT's public mapping $NAT_PUBLIC_IP:$mapped_1, no relatch" \
  test "$caller_latched $caller_relatches" = "$NAT_PUBLIC_IP:$mapped_1 0"
check "(a) the callee leg latched onto its SDP address $CALLEE_IP:$CALLEE_PORT" \
  test "$callee_latched" = "$CALLEE_IP:$CALLEE_PORT"
check_media a

step "(b) NAT rebinding: after 1 s the phone goes on from $PHONE_IP:$PHONE_PORT_2 without a pause" \
  "(same SSRC, next sequence)"
relatches_before=$(relay_metric latchkey_relay_relatches_total)
# No pause: the latched source is never silent, so only the same-stream rule can move the latch
# (a new source after 2 s of silence would be the other way).
media b $((PHASE_SECONDS + 1)) "$PHONE_PORT_1" --rebind="$PHONE_IP:$PHONE_PORT_2" --rebind-after=1
mapped_2=$(nat_public_port "$PHONE_PORT_2" "${caller_relay#*:}") ||
  fail "no conntrack entry for $PHONE_IP:$PHONE_PORT_2 -> $caller_relay in the router"
get_session b
relatch_delay=$("$PY" -c "print('%.3f' % ($caller_latched_at - $phone_rebind_send))")
echo "the router maps $PHONE_IP:$PHONE_PORT_2 to $NAT_PUBLIC_IP:$mapped_2; the caller leg re-latched onto" \
  "$caller_latched ${relatch_delay}s after the phone's first packet from there"
check "(b) the NAT mapped a new public port ($mapped_1 -> $mapped_2)" test "$mapped_1" != "$mapped_2"
check "(b) the caller leg re-latched onto $NAT_PUBLIC_IP:$mapped_2, relatch_count 1" \
  test "$caller_latched $caller_relatches" = "$NAT_PUBLIC_IP:$mapped_2 1"
check "(b) the relay counted one relatch" \
  test $(($(relay_metric latchkey_relay_relatches_total) - relatches_before)) -eq 1
check "(b) ... within 1 s of the first packet from the new mapping (${relatch_delay}s)" \
  "$PY" -c "import sys; sys.exit(0 if -0.05 <= $relatch_delay <= 1.0 else 1)"
check "(b) from the rebinding on, the callee heard > 90 % of the phone's packets ($callee_after_heard of $phone_after_sent)" \
  percent_ok "$callee_after_heard" "$phone_after_sent"
check "(b) from the rebinding on, the phone heard > 90 % of the callee's packets ($phone_after_heard of $callee_after_sent)" \
  percent_ok "$phone_after_heard" "$callee_after_sent"
check_media b

step "(c) outsiders at $OUTSIDER_IP spray both relay ports while the call goes on"
not_signaling_before=$(drops not_signaling_ip)
wrong_source_before=$(drops wrong_source)
OUTSIDERS=1
media c "$PHASE_SECONDS" "$PHONE_PORT_2"
get_session c
not_signaling=$(($(drops not_signaling_ip) - not_signaling_before))
wrong_source=$(($(drops wrong_source) - wrong_source_before))
caller_port_spray=0
for o in a b c; do
  read -r bind sent heard < <(outsider_field "$o" "d['bind'], d['sent'], d['received']")
  check "(c) outsider $o ($bind, sent $sent) received nothing (got $heard)" test "$heard" = 0
  if [[ $o == c ]]; then callee_port_spray=$sent; else caller_port_spray=$((caller_port_spray + sent)); fi
done
echo "outsiders sent $caller_port_spray to the caller's relay port, $callee_port_spray to the callee's;" \
  "relay drops: not_signaling_ip +$not_signaling, wrong_source +$wrong_source"
check "(c) the caller leg is still latched onto $NAT_PUBLIC_IP:$mapped_2, relatch_count 1" \
  test "$caller_latched $caller_relatches" = "$NAT_PUBLIC_IP:$mapped_2 1"
check "(c) the callee leg is still latched onto $CALLEE_IP:$CALLEE_PORT, relatch_count 0" \
  test "$callee_latched $callee_relatches" = "$CALLEE_IP:$CALLEE_PORT 0"
check "(c) all $caller_port_spray packets at the caller's relay port dropped as not_signaling_ip (+$not_signaling)" \
  test "$not_signaling" -ge "$caller_port_spray"
# Not more: a phone's packet refused as wrong_source would mean the latch had moved to someone else.
# (A few of the outsider's may count as too_fast instead, when a loaded host bunches its sends.)
check "(c) > 90 % of the $callee_port_spray packets at the callee's relay port dropped as wrong_source (+$wrong_source)" \
  percent_ok "$wrong_source" "$callee_port_spray"
check "(c) ... and nothing else dropped as wrong_source" test "$wrong_source" -le "$callee_port_spray"
check_media c

step "release; the session's events as watch sessions saw them"
ctl sessions release "$session_id" >"$scratch/release.log" 2>&1 ||
  fail "sessions release: $(cat "$scratch/release.log")"
wait_for 5 "the RELEASED event" grep -q SESSION_EVENT_TYPE_RELEASED "$scratch/watch.log"
# TYPE and the caller's latched source, per event.
events=$(grep '^{' "$scratch/watch.log" | "$PY" -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    c = e["session"]["caller"].get("stats", {}).get("latchedSource")
    print(e["type"].replace("SESSION_EVENT_TYPE_", "") + "@" + ("%(ip)s:%(port)s" % c if c else "-"), end=" ")')
echo "$events"
check "the caller leg's first latch was onto $NAT_PUBLIC_IP:$mapped_1" \
  grep -qE "(^| )LATCHED@$NAT_PUBLIC_IP:$mapped_1 " <<<"$events"
check "exactly one RELATCHED event, onto $NAT_PUBLIC_IP:$mapped_2" \
  test "$(grep -oE 'RELATCHED@[^ ]*' <<<"$events" | tr '\n' ' ')" = "RELATCHED@$NAT_PUBLIC_IP:$mapped_2 "

((failures == 0)) || fail "$failures check(s) failed"
pass "media through the NAT: latched, re-latched after the rebinding, outsiders refused (${SECONDS} s)"
