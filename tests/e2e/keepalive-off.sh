#!/usr/bin/env bash
# The control experiment: the same NAT and phone with the relay's keepalives off. The registrar's
# OPTIONS reaches the phone right after the REGISTER, and no longer once the mapping expired (60 s).
source "$(dirname "$0")/lib.sh"

setup_scene --keepalive_mode=off
mark
step "right after the REGISTER: the registrar reaches the phone through its fresh mapping"
answer=$(probe) || fail "the registrar's OPTIONS to $public_contact got no answer even right after the REGISTER"
pass "fresh mapping: $answer"
grep -q '"workerId"' "$scratch/register.json" && fail "control assigned the binding's keepalives to a worker whose keepalives are off"
pass "control assigned no worker: $(binding_field "['keepalive'].get('note', '')")"

step "waiting 60 s without keepalives"
sleep_until 60
echo "$(relay_keepalive_summary)"
[[ $(phone_keepalives_received) -eq 0 ]] || fail "the phone received keepalives although they are off"
pass "the phone received no keepalive"
if answer=$(probe); then fail "the registrar's OPTIONS still reached the phone after 60 s ($answer): did the mapping not expire?"; fi
pass "after 60 s the registrar's OPTIONS to $public_contact gets no answer: the mapping expired"
