#!/usr/bin/env bash
# Registrar-source keepalives through an address-and-port-filtering NAT whose UDP mappings expire
# after 10 s: OPTIONS every 5 s sent with the registrar's address keep the phone's mapping open, so
# after 60 s of silence from the phone the registrar can still reach it. Also: the relay's STUN
# responder answers through the NAT with the same public address the registrar sees.
source "$(dirname "$0")/lib.sh"

setup_scene --keepalive_source_ips="$REGISTRAR_IP"
mark

step "STUN: the phone asks the relay's responder (port-preserving NAT: it sees what the registrar sees)"
stun_and_register 5062
check "STUN mapped address $stun_mapped = the registrar's view $registrar_seen = $NAT_PUBLIC_IP:5062" \
  test "$stun_mapped" = "$registrar_seen" -a "$stun_mapped" = "$NAT_PUBLIC_IP:5062"

step "waiting 60 s; the phone sends nothing, the relay pings it every ${KEEPALIVE_INTERVAL} s as $REGISTRAR"
sleep_until 60
keepalives=$(phone_keepalives_received)
sent=$(relay_metric latchkey_keepalives_sent_total)
answered=$(relay_metric 'latchkey_keepalive_responses_total{class="2xx"}')
misses=$(relay_metric latchkey_keepalive_misses_total)
echo "$(relay_keepalive_summary)"

step "an OPTIONS from the registrar's own socket to $public_contact after 60 s"
if answer=$(probe); then pass "the mapping survived 60 s: the phone answered the registrar ($answer)"; else
  echo "FAIL: the registrar's OPTIONS to $public_contact got no answer after 60 s" >&2
  failures=$((failures + 1))
fi
check "the phone received >= 10 keepalives through the NAT (got $keepalives)" test "$keepalives" -ge 10
check "the relay sent >= 10 keepalives (sent $sent)" test "$sent" -ge 10
check "the relay saw >= 10 answers 2xx (got $answered)" test "$answered" -ge 10
check "no keepalive missed (misses $misses)" test "$misses" -eq 0
check "the relay's keepalive table holds the binding" test "$(relay_metric latchkey_keepalive_targets)" -eq 1
check "control: no binding unreachable" test "$(control_metric latchkey_bindings_unreachable)" -eq 0
check "control sent the assignment (assignments sent $(control_metric latchkey_keepalive_assignments_sent_total))" \
  test "$(control_metric latchkey_keepalive_assignments_sent_total)" -ge 1
((failures == 0)) || fail "$failures check(s) failed"
