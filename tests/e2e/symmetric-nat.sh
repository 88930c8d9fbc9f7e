#!/usr/bin/env bash
# A symmetric NAT (MASQUERADE --random: a new random public port per destination, address-and-port
# filtering). What works: keepalives sent with the registrar's address are the one destination the
# phone itself talks to, so they keep its mapping open for 60 s. What does not: the public address
# learnt from STUN (a different destination, so a different mapping) is not the one the registrar
# sees, and nobody but the registrar (e.g. the relay's own address) gets through that mapping.
source "$(dirname "$0")/lib.sh"

NAT_OPTIONS=(--random)
setup_scene --keepalive_source_ips="$REGISTRAR_IP"
mark

step "STUN from the phone: symmetric NAT maps each destination to another public port"
stun_and_register 5062
check "STUN mapped $stun_mapped differs from what the registrar saw, $registrar_seen (STUN is no help here)" \
  test "$stun_mapped" != "$registrar_seen"
check "both on the NAT's public address" test "${stun_mapped%:*}" = "$NAT_PUBLIC_IP" -a "${registrar_seen%:*}" = "$NAT_PUBLIC_IP"
echo "the phone's sipp REGISTER came from $public_contact (source port $PHONE_PORT, randomized by the NAT)"

step "an outsider (the relay's own address $RELAY_IP) sends to the phone's public contact"
if answer=$(outsider_probe "$RELAY_IP:5070"); then
  echo "FAIL: an outsider reached the phone through its mapping to the registrar ($answer)" >&2
  failures=$((failures + 1))
else
  pass "the NAT drops an outsider's OPTIONS: own-socket keepalives could not work here"
fi

step "waiting 60 s; the relay pings as $REGISTRAR every ${KEEPALIVE_INTERVAL} s"
sleep_until 60
echo "$(relay_keepalive_summary)"
if answer=$(probe); then pass "after 60 s the registrar still reaches the phone behind the symmetric NAT ($answer)"; else
  echo "FAIL: the registrar's OPTIONS to $public_contact got no answer after 60 s" >&2
  failures=$((failures + 1))
fi
check "the phone received >= 10 keepalives" test "$(phone_keepalives_received)" -ge 10
check "the relay saw >= 10 answers 2xx" test "$(relay_metric 'latchkey_keepalive_responses_total{class="2xx"}')" -ge 10
check "no keepalive missed" test "$(relay_metric latchkey_keepalive_misses_total)" -eq 0
((failures == 0)) || fail "$failures check(s) failed"
