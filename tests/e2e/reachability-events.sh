#!/usr/bin/env bash
# The phone dies: after the configured misses the binding becomes unreachable (a WatchBindings
# UNREACHABLE event, counted by relay and control). The phone comes back on the same port and
# REGISTERs again (the PBX reports it to control): the next keepalive it answers makes the binding
# reachable again (REACHABLE event).
source "$(dirname "$0")/lib.sh"

setup_scene --keepalive_source_ips="$REGISTRAR_IP"

# `latchkeyctl watch` cannot say when it has subscribed: register again (a REFRESHED event) until
# an event for the binding shows up.
run_in "$NS_PUB" "$scratch/watch.log" "$LATCHKEY_CTL_BIN" --server=127.0.0.1:7400 $(tls_flags operator-e2e) --json watch bindings --aor="$AOR"
watch_pid=$last_pid
subscribed=false
for _ in $(seq 20); do
  ctl register --aor="$AOR" --contact="<sip:phone@$PHONE_IP:$PHONE_PORT>" --source="$public_contact" \
    --registrar="$REGISTRAR" --transport=udp --expires=3600s >/dev/null
  sleep 0.5
  if grep -q "$binding_id" "$scratch/watch.log"; then subscribed=true; break; fi
done
$subscribed || fail "latchkeyctl watch bindings printed no event for binding $binding_id"
pass "watching binding events"

# event_seen TYPE: the watch printed an event of that type (BINDING_EVENT_TYPE_TYPE) for the binding.
event_seen() { grep "$binding_id" "$scratch/watch.log" | grep -q "\"BINDING_EVENT_TYPE_$1\""; }

step "the phone answers keepalives"
answered() { (($(relay_metric 'latchkey_keepalive_responses_total{class="2xx"}') >= 1)); }
wait_for 15 "a keepalive answered" answered
pass "$(relay_keepalive_summary)"
event_seen UNREACHABLE && fail "an UNREACHABLE event while the phone answers"

step "killing the phone"
stop_phone
killed_at=$SECONDS
limit=$(((KEEPALIVE_THRESHOLD + 1) * KEEPALIVE_INTERVAL + 5))
wait_for "$limit" "an UNREACHABLE event within ${limit}s of the phone's death" event_seen UNREACHABLE
took=$((SECONDS - killed_at))
((took >= (KEEPALIVE_THRESHOLD - 1) * KEEPALIVE_INTERVAL)) ||
  fail "UNREACHABLE only ${took}s after the phone died: sooner than $KEEPALIVE_THRESHOLD misses allow"
pass "UNREACHABLE event ${took}s after the phone died ($KEEPALIVE_THRESHOLD misses at ${KEEPALIVE_INTERVAL}s)"
[[ $(binding_field "['reachability']") == REACHABILITY_UNREACHABLE ]] || fail "GetBinding does not show it unreachable"
[[ $(relay_metric 'latchkey_keepalive_reachability_changes_total{to="unreachable"}') -eq 1 ]] ||
  fail "relay: reachability_changes_total{to=unreachable} is not 1"
[[ $(control_metric latchkey_bindings_unreachable) -eq 1 ]] || fail "control: latchkey_bindings_unreachable is not 1"
[[ $(control_metric 'latchkey_binding_reachability_changes_total{to="unreachable"}') -eq 1 ]] ||
  fail "control: latchkey_binding_reachability_changes_total{to=unreachable} is not 1"
pass "GetBinding, relay and control metrics agree: unreachable; $(relay_keepalive_summary)"
event_seen REACHABLE && fail "a REACHABLE event while the phone is dead"

step "the phone comes back on $PHONE_IP:$PHONE_PORT and REGISTERs again"
registers() { grep -c "REGISTER $AOR from" "$scratch/registrar.log"; }
registered_before=$(registers)
new_register() { (($(registers) > registered_before)); }
start_phone
wait_for 15 "the new REGISTER" new_register
public_contact=$(registrar source "$AOR")
echo "the registrar saw the new REGISTER from $public_contact"
ctl --json register --aor="$AOR" --contact="<sip:phone@$PHONE_IP:$PHONE_PORT>" --source="$public_contact" \
  --registrar="$REGISTRAR" --transport=udp --expires=3600s >/dev/null || fail "register after the restart failed"
back_at=$SECONDS
limit=$((2 * KEEPALIVE_INTERVAL + 5))
wait_for "$limit" "a REACHABLE event within ${limit}s of the new REGISTER" event_seen REACHABLE
pass "REACHABLE event $((SECONDS - back_at))s after the new REGISTER"
[[ $(binding_field "['reachability']") == REACHABILITY_REACHABLE ]] || fail "GetBinding does not show it reachable"
[[ $(relay_metric 'latchkey_keepalive_reachability_changes_total{to="reachable"}') -eq 1 ]] ||
  fail "relay: reachability_changes_total{to=reachable} is not 1"
[[ $(control_metric latchkey_bindings_unreachable) -eq 0 ]] || fail "control: latchkey_bindings_unreachable is not 0"
[[ $(control_metric 'latchkey_binding_reachability_changes_total{to="reachable"}') -eq 1 ]] ||
  fail "control: latchkey_binding_reachability_changes_total{to=reachable} is not 1"
pass "GetBinding, relay and control metrics agree: reachable again"
answer=$(probe) || fail "the registrar cannot reach the restarted phone"
pass "the registrar reaches the restarted phone ($answer)"
