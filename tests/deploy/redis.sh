#!/usr/bin/env bash
# overlays/ha's Redis group, run on loopback from its rendered StatefulSet and ConfigMap with the
# image's entrypoint (lib.sh start_redis_group): the roles it takes and what a write survives, while
# a writer keeps writing through the sentinels as control would (each write retried until
# acknowledged; the sentinels asked again after an error).
#   1. The settings the ConfigMap promises are the running servers' and sentinels'.
#   2. Planned failover (the preStop hook): the primary hands over, no acknowledged write is lost.
#   3. kill -9 of the primary: a replica is promoted (writes refused meanwhile: the figure in
#      docs/OPERATIONS.md), and the killed node, started again, comes back as a replica of the new
#      primary, not as a second primary. Only the very last write acknowledged before the kill may
#      be missing (asynchronous replication).
#   4. Every process killed and started again at once: the same primary as before, nothing lost.
here=$(dirname "$(realpath "$0")")
source "$here/lib.sh"
source "$here/render.sh"

render "$scratch/ha.yaml" "$k8s/overlays/ha"
start_redis_group "$scratch/ha.yaml"
primary=$(redis_primary)
echo "group up: primary on port $primary (pod $(redis_index_of "$primary")), replicas $(redis_cli "$primary" INFO replication | grep -c 'state=online')"

# 1. What the ConfigMap says is what runs.
for port in "${redis_ports[@]}"; do
  for want in "appendonly yes" "appendfsync everysec" "min-replicas-to-write 1" "maxmemory-policy noeviction"; do
    got=$(redis_cli "$port" CONFIG GET "${want% *}" | sed -n 2p)
    [[ $got == "${want#* }" ]] || fail "server on port $port: ${want% *} is '$got', want '${want#* }'"
  done
done
lag=$(redis_cli "$primary" CONFIG GET min-replicas-max-lag | sed -n 2p)
for port in "${redis_sentinel_ports[@]}"; do
  master=$(redis_cli "$port" SENTINEL MASTER "$redis_master_name" | paste -sd' ')
  [[ $master == *"quorum 2 "* && $master == *"down-after-milliseconds "* ]] || fail "sentinel on port $port: $master"
  [[ $(redis_cli "$port" SENTINEL CONFIG GET resolve-hostnames | sed -n 2p) == yes ]] || fail "sentinel on port $port resolves no hostnames"
  [[ $(redis_cli "$port" SENTINEL CKQUORUM "$redis_master_name") == OK* ]] || fail "sentinel on port $port: no quorum"
done
down_after=$(redis_cli "${redis_sentinel_ports[0]}" SENTINEL MASTER "$redis_master_name" | sed -n '/^down-after-milliseconds$/{n;p}')
echo "running: AOF everysec, min-replicas-to-write 1 (max lag $lag s), noeviction; sentinels quorum 2, down-after ${down_after} ms, hostnames on"

# The writer: SET w:N N for N = 1, 2, ..., each retried until acknowledged, to the primary the
# sentinels name (asked again after any error, as control does). Logs "N SECONDS" per acknowledged
# write and "- SECONDS" per refusal to $scratch/writes.
writer() {
  local n=1 port="" reply
  while [[ -d $scratch && ! -e $scratch/stop-writer ]]; do
    [[ -n $port ]] || port=$(redis_cli "${redis_sentinel_ports[n % ${#redis_sentinel_ports[@]}]}" SENTINEL get-master-addr-by-name "$redis_master_name" | sed -n 2p) || true
    reply=$(timeout 2 redis-cli -p "${port:-1}" SET "w:$n" "$n" 2>&1 | tr -d '\r') || true
    if [[ $reply == OK ]]; then
      echo "$n $EPOCHREALTIME"
      n=$((n + 1))
    else
      echo "- $EPOCHREALTIME"
      port=""
      sleep 0.02
    fi
  done >"$scratch/writes"
}
acked() { grep -c '^[0-9]' "$scratch/writes"; }
acked_beyond() { (($(acked) > $1)); }
last_acked() { awk '$1 != "-" { n = $1 } END { print n + 0 }' "$scratch/writes"; }
# The longest time between two acknowledged writes, in seconds.
longest_gap() { awk '$1 != "-" { if (t && $2 - t > g) g = $2 - t; t = $2 } END { printf "%.2f", g }' "$scratch/writes"; }
# Acknowledged writes 1..N not on the node at PORT, space-separated.
missing_on() {
  local port=$1 n=$2
  seq 1 "$n" | sed 's/^/GET w:/' | timeout 30 redis-cli -p "$port" | tr -d '\r' | awk '$0 != NR { printf "%s%d", sep, NR; sep = " " }'
}
# The last write acknowledged before the first refusal after time T (the one a kill at T may take
# with it).
last_acked_before_refusal() {
  awk -v t="$1" '$1 == "-" && $2 > t { print n + 0; exit } $1 != "-" { n = $1 }' "$scratch/writes"
}
start_writer() {
  rm -f "$scratch/stop-writer"
  writer &
  writer_pid=$!
  pids+=("$writer_pid")
  wait_for 10 "the writer's first writes" acked_beyond 20
}
stop_writer() {
  touch "$scratch/stop-writer"
  wait "$writer_pid"
}
# Every replica of the primary at PORT has what the primary had when this was called.
wait_synced() {
  local p=$1 offset
  offset=$(redis_cli "$p" INFO replication | sed -n 's/^master_repl_offset://p')
  local deadline=$((SECONDS + 30)) port
  until replicas_past "$p" "$offset"; do
    if ((SECONDS >= deadline)); then
      for port in "${redis_ports[@]}"; do echo "port $port: $(redis_cli "$port" INFO replication | grep -E '^(role|slave[0-9]|master_host|master_port|master_link_status|master_repl_offset)' | paste -sd' ')"; done
      fail "the replicas of port $p did not reach offset $offset"
    fi
    sleep 0.2
  done
}
# Each other node's own replication offset (directly or through another replica, as Sentinel may
# leave it for a while after a failover) is past OFFSET.
replicas_past() {
  local port
  for port in "${redis_ports[@]}"; do
    [[ $port == "$1" ]] && continue
    redis_cli "$port" INFO replication | awk -F: -v want="$2" '
      $1 == "master_link_status" && $2 == "up" { up = 1 }
      $1 == "slave_repl_offset" && $2 + 0 >= want + 0 { past = 1 }
      END { exit !(up && past) }' || return 1
  done
}

# 2. Planned failover: the preStop hook of the primary's pod.
start_writer
old=$primary
old_pod=$(redis_index_of "$old")
redis_entrypoint "$old_pod" pre-stop >"$scratch/pre-stop.log" 2>&1
wait_for 20 "the sentinels to agree on a new primary" bash -c "p=\$(timeout 3 redis-cli -p ${redis_sentinel_ports[0]} SENTINEL get-master-addr-by-name $redis_master_name | sed -n 2p); [[ -n \$p && \$p != $old ]]"
sleep 1
stop_writer
primary=$(redis_primary) || fail "the sentinels disagree after the planned failover"
[[ $primary != "$old" ]] || fail "pre-stop left port $old the primary: $(cat "$scratch/pre-stop.log")"
[[ $(redis_cli "$old" ROLE | head -n1) == slave ]] || fail "the former primary is not a replica: $(redis_cli "$old" ROLE | paste -sd' ')"
n=$(last_acked)
wait_synced "$primary"
lost=$(missing_on "$primary" "$n")
[[ -z $lost ]] || fail "planned failover lost acknowledged writes: $lost"
echo "planned failover (pre-stop): port $old -> $primary, $n acknowledged writes, none lost, longest pause $(longest_gap) s"

# 3. kill -9 of the primary.
redis_cli "$primary" FLUSHALL >/dev/null
wait_synced "$primary"
start_writer
old=$primary
old_pod=$(redis_index_of "$old")
sleep 0.5
before=$(last_acked)
killed_at=$EPOCHREALTIME
kill -KILL "${redis_server_pid[old_pod]}"
wait "${redis_server_pid[old_pod]}" 2>/dev/null || true
wait_for 60 "a replica promoted" bash -c "p=\$(timeout 3 redis-cli -p ${redis_sentinel_ports[(old_pod + 1) % ${#redis_sentinel_ports[@]}]} SENTINEL get-master-addr-by-name $redis_master_name | sed -n 2p); [[ -n \$p && \$p != $old ]]"
wait_for 30 "writes acknowledged again" acked_beyond $((before + 20))
refused=$(longest_gap)
start_redis_node "$old_pod" server
wait_for 60 "the killed node back as a replica, in sync" redis_group_ready
primary=$(redis_primary)
[[ $primary != "$old" ]] || fail "the killed primary came back as the primary"
[[ $(redis_cli "$old" ROLE | head -n1) == slave ]] || fail "the killed primary came back as $(redis_cli "$old" ROLE | head -n1)"
grep -q "sentinels name 127.0.0.1:$primary as primary" "$scratch/redis-$old_pod-server.log" ||
  fail "the restarted node did not take its role from the sentinels: $(grep redis-entrypoint "$scratch/redis-$old_pod-server.log" | tail -3)"
stop_writer
n=$(last_acked)
wait_synced "$primary"
lost=$(missing_on "$primary" "$n")
# Replication is asynchronous: the last write the killed primary acknowledged may not have left it.
last_on_old=$(last_acked_before_refusal "$killed_at")
for w in $lost; do ((w == last_on_old)) || fail "kill -9 of the primary lost acknowledged write $w (the last one it acknowledged: $last_on_old)"; done
[[ -z $(missing_on "$old" "$n") || -n $lost ]] || fail "the restarted node misses writes its primary has"
echo "kill -9 of the primary (port $old): port $primary promoted, writes refused for $refused s (down-after $down_after ms)," \
  "$n acknowledged writes, lost: ${lost:-none}; the killed node rejoined as a replica"

# 4. Everything killed at once and started again. With the primary elsewhere than pod 0 (moved
# there if needed), to see it is the sentinels' record that decides, not the pod's ordinal.
if [[ $(redis_index_of "$primary") == 0 ]]; then
  redis_entrypoint 0 failover >"$scratch/failover.log" 2>&1 || fail "failover from pod 0: $(cat "$scratch/failover.log")"
  wait_for 30 "the group after moving the primary off pod 0" redis_group_ready
  primary=$(redis_primary)
fi
redis_cli "$primary" SET before-restart yes >/dev/null
wait_synced "$primary"
for i in "${!redis_ports[@]}"; do
  kill -KILL "${redis_server_pid[i]}" "${redis_sentinel_pid[i]}"
  wait "${redis_server_pid[i]}" "${redis_sentinel_pid[i]}" 2>/dev/null || true
done
for i in "${!redis_ports[@]}"; do
  start_redis_node "$i" sentinel
  start_redis_node "$i" server
done
wait_for 90 "the group back after a full restart" redis_group_ready
after=$(redis_primary)
[[ $after == "$primary" ]] || fail "after a full restart port $after is the primary, was $primary"
[[ $(redis_cli "$after" GET before-restart) == yes ]] || fail "a full restart lost data"
[[ -z $(missing_on "$after" "$n") ]] || fail "a full restart lost acknowledged writes"
echo "full restart: port $after (pod $(redis_index_of "$after")) is still the primary, nothing lost"
