#!/usr/bin/env bash
# Own-socket keepalives through an address-and-port-filtering NAT: the relay pings from its own
# address (not the registrar's), the NAT drops every ping, the relay counts misses, the binding goes
# unreachable and the mapping expires: what docs/KEEPALIVES.md says about own_socket mode.
source "$(dirname "$0")/lib.sh"

OWN_SOCKET=$RELAY_IP:5070
setup_scene --keepalive_mode=own_socket --keepalive_listen="$OWN_SOCKET"
mark
step "right after the REGISTER: the registrar reaches the phone through its fresh mapping"
answer=$(probe) || fail "the registrar's OPTIONS to $public_contact got no answer even right after the REGISTER"
pass "fresh mapping: $answer"
worker=$(binding_field "['keepalive'].get('workerId', '')")
[[ $worker == relay-e2e ]] || fail "control did not assign the binding to the own-socket worker (worker '$worker')"
pass "control assigned the binding to the own-socket worker $worker"

step "waiting 60 s; the relay pings from $OWN_SOCKET every ${KEEPALIVE_INTERVAL} s"
sleep_until 60
echo "$(relay_keepalive_summary)"
sent=$(relay_metric latchkey_keepalives_sent_total)
misses=$(relay_metric latchkey_keepalive_misses_total)
responses=0
for class in 1xx 2xx 3xx 4xx 5xx 6xx; do
  responses=$((responses + $(relay_metric "latchkey_keepalive_responses_total{class=\"$class\"}")))
done
((sent >= 10)) || fail "the relay sent only $sent keepalives in 60 s"
pass "the relay sent $sent keepalives"
[[ $(phone_keepalives_received) -eq 0 ]] || fail "$(phone_keepalives_received) own-socket keepalives reached the phone through the NAT"
pass "none reached the phone (the NAT filters by address and port)"
((responses == 0)) || fail "the relay counted $responses answers"
pass "the relay counted no answer"
((misses >= 8)) || fail "the relay counted only $misses misses"
pass "the relay counted $misses misses"
reachability=$(binding_field "['reachability']")
[[ $reachability == REACHABILITY_UNREACHABLE ]] || fail "control shows the binding $reachability"
pass "control shows the binding $reachability"
if answer=$(probe); then fail "the registrar's OPTIONS still reached the phone after 60 s ($answer)"; fi
pass "after 60 s the registrar's OPTIONS to $public_contact gets no answer: own-socket pings kept nothing alive"
