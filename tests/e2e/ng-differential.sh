#!/usr/bin/env bash
# Differential test of the ng front door: Debian's rtpengine (the reference, 10.5 on Debian 12) and
# latchkey-control (--ng_listen) with one latchkey-relay, side by side on loopback, are sent the SAME
# ng requests, byte for byte (bencode as Kamailio 5.6 builds it: key order supports, sdp, ICE, flags,
# replace, call-id, via-branch, received-from, from-tag, to-tag, command; cookies 0_<pid>_<n>), and
# their replies are compared (kamailio/ng_differential.py): result, presence of a warning, reply keys,
# the structure of every rewritten SDP (lines by type in order, m= lines equal), each server's SDP
# naming its own relay (c= and m= ports, o= with replace-origin) and not the phone, and which relay
# ports stay put across re-offers. Scenarios: ping; offer/answer/re-offer/query/delete with the flags
# of kamailio-loopback.sh and with SIP-source-address, asymmetric, address-family=IP4,
# rtcp-mux-demux, unknown flags and unknown keys; a callee re-INVITE; a late offer; forking by
# via-branch; an unknown call; malformed requests; retransmissions; a Call-ID reused after delete.
# Differences that are Latchkey's design are in the commented allow-list of ng_differential.py
# (docs/ng-differences.md is the operator-facing table); any other difference fails the test. It
# prints one row per request: scenario, request, rtpengine's result, Latchkey's, the verdict.
#
# No root needed (no Kamailio, sipp or tap: kamailio_lib.sh with NG_ONLY=1). About 2 s.
# KEEP_SCRATCH=1 keeps the logs and the exchange (differential.jsonl).
NG_SERVER=both
NG_ONLY=1
# One block of 256 ports: the services of kamailio_lib.sh's layout, then 112 relay ports for each
# server (each keeps deleted calls for its 30 s delete delay, so ports are not reused within a run).
PORT_BLOCK=256
# shellcheck source=kamailio_lib.sh
source "$(dirname "$0")/kamailio_lib.sh"

pick_ports
LATCHKEY_NG_PORT=$NG_PORT
RTPENGINE_NG_PORT=$UAC_MEDIA # no phones here: the slot is free
LATCHKEY_PORTS=($((BASE + 32)) $((BASE + 143)))
RTPENGINE_PORTS=($((BASE + 144)) $((BASE + 255)))

step "latchkey-control (ng on 127.0.0.1:$LATCHKEY_NG_PORT) and a relay (ports ${LATCHKEY_PORTS[0]}-${LATCHKEY_PORTS[1]})"
RELAY_PORT_MIN=${LATCHKEY_PORTS[0]} RELAY_PORT_MAX=${LATCHKEY_PORTS[1]}
start_control
start_relay
step "rtpengine (ng on 127.0.0.1:$RTPENGINE_NG_PORT, ports ${RTPENGINE_PORTS[0]}-${RTPENGINE_PORTS[1]})"
NG_PORT=$RTPENGINE_NG_PORT RELAY_PORT_MIN=${RTPENGINE_PORTS[0]} RELAY_PORT_MAX=${RTPENGINE_PORTS[1]}
start_rtpengine
for port in "$LATCHKEY_NG_PORT" "$RTPENGINE_NG_PORT"; do
  wait_for 10 "the ng server to answer ping on 127.0.0.1:$port" ng_tool ping "127.0.0.1:$port"
done

step "the same ng requests to both"
rc=0
"$PY" "$kam_dir/ng_differential.py" \
  --rtpengine="127.0.0.1:$RTPENGINE_NG_PORT" --rtpengine-ports="${RTPENGINE_PORTS[0]}-${RTPENGINE_PORTS[1]}" \
  --latchkey="127.0.0.1:$LATCHKEY_NG_PORT" --latchkey-ports="${LATCHKEY_PORTS[0]}-${LATCHKEY_PORTS[1]}" \
  --relay-ip=127.0.0.1 --out="$scratch/differential.jsonl" || rc=$?
((rc == 0)) || fail "rtpengine and Latchkey differ beyond the allow-list (rows marked DIFFER above)"
pass "Latchkey's ng front door agrees with rtpengine $(rtpengine --version 2>&1 | awk '{print $2}') but for the allow-listed differences (${SECONDS} s)"
