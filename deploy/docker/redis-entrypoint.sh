#!/usr/bin/env bash
# Entrypoint of the latchkey-redis image (deploy/Dockerfile.redis): one node of the Sentinel-managed
# Redis group that holds control's bindings and sessions (deploy/k8s/redis), run as its server or as
# its sentinel, plus the probes and the planned failover the StatefulSet uses. scripts/run-local.sh
# --ha and tests/deploy run the same script on loopback.
#
#   redis-entrypoint.sh server | sentinel   generate the config under LK_REDIS_DIR and exec the process
#   redis-entrypoint.sh live | ready | sentinel-ready
#                                            probes: exit 0 when the server answers / is primary or in
#                                            sync with it / the sentinel knows the primary
#   redis-entrypoint.sh failover            move the primary to a replica without losing an acknowledged
#                                            write (fails unless this node ends up a replica)
#   redis-entrypoint.sh pre-stop            failover if this node is the primary; never fails
#
# Environment:
#   LK_REDIS_NODES        every node, "HOST:PORT:SENTINEL_PORT ...", in ordinal order (node 0 is the
#                         first primary of a new group)
#   LK_REDIS_SELF         this node's index (default: the number ending the hostname, as a StatefulSet
#                         names its pods)
#   LK_REDIS_MASTER_NAME  Sentinel's name for the group (default latchkey)
#   LK_REDIS_QUORUM       sentinels that must see the primary down before a failover (default 2)
#   LK_REDIS_DIR          AOF, RDB and the generated configs (default /data)
#   LK_REDIS_CONF_DIR     redis.conf and sentinel.conf the generated configs start from
#                         (default /etc/latchkey-redis)
#   LK_REDIS_BIND         listen addresses (default "* -::*")
#
# Which role a starting server takes. Sentinel is the authority: the server asks every sentinel and
# follows the primary named with the highest config epoch (the newest failover). Only when no
# sentinel answers does it fall back to what this node's own sentinel last wrote to disk, then to a
# primary found by asking the other servers (ROLE), and only then, for a new group, to node 0. So a
# restarted former primary comes back as a replica of whoever was promoted meanwhile, never as a
# second primary with its older data. If the sentinels still name this node but see it down, or
# have missed it for over half their down-after time, a failover may be under way or about to
# start: the server waits for it (up to LK_REDIS_FAILOVER_WAIT seconds, then starts as primary)
# rather than take writes the promoted replica would never see. Only a quick restart (a crash the
# kubelet restarts at once) comes back as the primary.
set -euo pipefail

log() { echo "redis-entrypoint: $*" >&2; }
die() {
  log "$*"
  exit 1
}

name=${LK_REDIS_MASTER_NAME:-latchkey}
quorum=${LK_REDIS_QUORUM:-2}
dir=${LK_REDIS_DIR:-/data}
conf_dir=${LK_REDIS_CONF_DIR:-/etc/latchkey-redis}
bind=${LK_REDIS_BIND:-* -::*}
read -r -a nodes <<<"${LK_REDIS_NODES:-}"
((${#nodes[@]} > 0)) || die "LK_REDIS_NODES is empty (HOST:PORT:SENTINEL_PORT of every node)"
hosts=() ports=() sports=()
for node in "${nodes[@]}"; do
  IFS=: read -r h p s <<<"$node"
  [[ -n $h && $p =~ ^[0-9]+$ && $s =~ ^[0-9]+$ ]] || die "LK_REDIS_NODES: '$node' is not HOST:PORT:SENTINEL_PORT"
  hosts+=("$h") ports+=("$p") sports+=("$s")
done
self=${LK_REDIS_SELF:-${HOSTNAME##*-}}
if ! [[ $self =~ ^[0-9]+$ ]] || ((self >= ${#nodes[@]})); then die "LK_REDIS_SELF '$self' is not an index of LK_REDIS_NODES"; fi
me=${hosts[self]} my_port=${ports[self]} my_sport=${sports[self]}
# Probes and the failover talk to this node's own processes without DNS.
local_host=${bind%% *}
[[ $local_host == "*" ]] && local_host=127.0.0.1

# redis-cli with a deadline: a node that does not answer must not hang a probe or a start-up. Prints
# the reply (nothing when unreachable) and never fails.
cli() {
  local host=$1 port=$2
  shift 2
  timeout "${LK_REDIS_CLI_TIMEOUT:-2}" redis-cli -h "$host" -p "$port" "$@" 2>/dev/null | tr -d '\r' || true
}

# "EPOCH HOST PORT FLAGS LAST_OK_MS DOWN_AFTER_MS" of the primary one sentinel names (nothing if it
# names none): the config epoch, the flags (s_down, o_down, failover_in_progress...), how long ago
# the primary last answered its ping and after how long the sentinel calls it down.
sentinel_view() {
  cli "$1" "$2" SENTINEL MASTER "$name" | awk '
    NR % 2 == 1 { key = $0; next }
    { v[key] = $0 }
    END {
      if (v["ip"] != "" && v["port"] != "")
        print v["config-epoch"] + 0, v["ip"], v["port"], v["flags"], v["last-ok-ping-reply"] + 0, v["down-after-milliseconds"] + 0
    }'
}

# "HOST PORT EPOCH DOUBT" of the primary named with the highest config epoch by the sentinels of
# every node ("all") or of the other nodes ("peers"); nothing when none answers. DOUBT is "-", or why
# a sentinel naming that primary may be failing it over: it sees it down, or has had no answer from it
# for over half its down-after time (a failover could start before that primary is back).
ask_sentinels() {
  local which=$1 i view epoch host port flags last_ok down_after
  local -a views=()
  for i in "${!hosts[@]}"; do
    if [[ $which == peers ]] && ((i == self)); then continue; fi
    view=$(sentinel_view "${hosts[i]}" "${sports[i]}")
    [[ -n $view ]] && views+=("$view")
  done
  ((${#views[@]})) || return 0
  local best_epoch=-1 best_host="" best_port=""
  for view in "${views[@]}"; do
    read -r epoch host port _ <<<"$view"
    if ((epoch > best_epoch)); then best_epoch=$epoch best_host=$host best_port=$port; fi
  done
  local doubt=-
  for view in "${views[@]}"; do
    read -r epoch host port flags last_ok down_after <<<"$view"
    [[ $host == "$best_host" && $port == "$best_port" ]] || continue
    if [[ ,$flags, == *,s_down,* || ,$flags, == *,o_down,* || $flags == *failover_in_progress* ]]; then
      doubt=$flags
    elif ((last_ok * 2 > down_after)); then
      doubt="no answer for ${last_ok} ms (down after ${down_after} ms)"
    fi
  done
  echo "$best_host $best_port $best_epoch $doubt"
}

addresses_of() { getent ahosts "$1" 2>/dev/null | awk '{ print $1 }' | sort -u || true; }

# Whether HOST PORT is this node: the same name, or a name resolving to one of this node's addresses.
is_me() {
  local host=$1 port=$2
  [[ $port == "$my_port" ]] || return 1
  [[ $host == "$me" ]] && return 0
  local a b
  for a in $(addresses_of "$host"); do
    for b in $(addresses_of "$me"); do [[ $a == "$b" ]] && return 0; done
  done
  return 1
}

# The primary this node's sentinel last recorded (it rewrites its config on every change).
persisted_primary() {
  [[ -f $dir/sentinel.conf ]] || return 0
  awk -v n="$name" '$1 == "sentinel" && $2 == "monitor" && $3 == n { print $4, $5 }' "$dir/sentinel.conf"
}

# A server of another node that says it is a primary: "HOST PORT", or nothing.
primary_by_role() {
  local i
  for i in "${!hosts[@]}"; do
    ((i == self)) && continue
    if [[ $(cli "${hosts[i]}" "${ports[i]}" ROLE | head -n1) == master ]]; then
      echo "${hosts[i]} ${ports[i]}"
      return
    fi
  done
}

# "self", or "HOST PORT" of the primary this server must replicate.
choose_primary() {
  local discovery=$((SECONDS + ${LK_REDIS_DISCOVERY_TIMEOUT:-15}))
  local settle=$((SECONDS + ${LK_REDIS_FAILOVER_WAIT:-60}))
  local view host port epoch doubt
  while :; do
    view=$(ask_sentinels all)
    if [[ -n $view ]]; then
      read -r host port epoch doubt <<<"$view"
      if ! is_me "$host" "$port"; then
        log "sentinels name $host:$port as primary (config epoch $epoch)"
        echo "$host $port"
        return
      fi
      if [[ $doubt == - ]]; then
        log "sentinels name this node as primary (config epoch $epoch)"
        echo self
        return
      fi
      if ((SECONDS >= settle)); then
        log "sentinels still name this node as primary after ${LK_REDIS_FAILOVER_WAIT:-60} s ($doubt): no replica was promoted, starting as primary"
        echo self
        return
      fi
      # Starting as primary now could race a failover: a replica promoted meanwhile would never
      # see the writes this node took. Let the sentinels finish (then follow their choice).
      log "sentinels name this node as primary but may be failing it over ($doubt): waiting"
    elif ((SECONDS >= discovery)); then
      break
    fi
    sleep 1
  done
  read -r host port <<<"$(persisted_primary)"
  if [[ -n ${host:-} ]]; then
    log "no sentinel answers: following this node's sentinel's last record, $host:$port"
    if is_me "$host" "$port"; then echo self; else echo "$host $port"; fi
    return
  fi
  read -r host port <<<"$(primary_by_role)"
  if [[ -n ${host:-} ]]; then
    log "no sentinel answers: $host:$port says it is a primary"
    echo "$host $port"
    return
  fi
  if ((self == 0)); then
    log "a new group: node 0 starts as its first primary"
    echo self
  else
    log "a new group: replicating node 0"
    echo "${hosts[0]} ${ports[0]}"
  fi
}

server() {
  [[ -f $conf_dir/redis.conf ]] || die "$conf_dir/redis.conf not found"
  mkdir -p "$dir/redis"
  local primary
  primary=$(choose_primary)
  # Regenerated on every start from the shipped file and the role just chosen: what a sentinel's
  # CONFIG REWRITE recorded in the previous run must not decide the role.
  {
    cat "$conf_dir/redis.conf"
    echo
    echo "# Generated by redis-entrypoint.sh for node $self ($me)."
    echo "port $my_port"
    echo "bind $bind"
    echo "dir $dir/redis"
    # The stable name (the StatefulSet's DNS name), not the pod's address, which changes on restart.
    echo "replica-announce-ip $me"
    echo "replica-announce-port $my_port"
    if [[ $primary != self ]]; then echo "replicaof $primary"; fi
  } >"$dir/redis.conf"
  if [[ $primary == self ]]; then log "starting redis-server as the primary"; else log "starting redis-server as a replica of ${primary/ /:}"; fi
  exec redis-server "$dir/redis.conf"
}

sentinel() {
  [[ -f $conf_dir/sentinel.conf ]] || die "$conf_dir/sentinel.conf not found"
  grep -Eq "^sentinel down-after-milliseconds $name " "$conf_dir/sentinel.conf" ||
    die "$conf_dir/sentinel.conf does not tune the group '$name' (LK_REDIS_MASTER_NAME)"
  mkdir -p "$dir"
  local file=$dir/sentinel.conf myid="" current_epoch=0 host="" port="" epoch=0 flags view
  if [[ -f $file ]]; then
    # The same id across restarts: the other sentinels count this one once.
    myid=$(awk '$1 == "sentinel" && $2 == "myid" { print $3 }' "$file")
    current_epoch=$(awk '$1 == "sentinel" && $2 == "current-epoch" { print $3 }' "$file")
  fi
  # The other sentinels know the newest primary. A new group's start at the same time and know
  # nothing yet, so wait for them only briefly, and for one round only when this sentinel has a
  # record of its own.
  local deadline=$((SECONDS + 5))
  if [[ -f $file ]]; then deadline=$SECONDS; fi
  while :; do
    view=$(ask_sentinels peers)
    if [[ -n $view ]]; then
      read -r host port epoch flags <<<"$view"
      log "the other sentinels name $host:$port as primary (config epoch $epoch)"
      break
    fi
    ((SECONDS < deadline)) || break
    sleep 1
  done
  if [[ -z $host ]]; then
    read -r host port <<<"$(persisted_primary)"
    if [[ -n ${host:-} ]]; then
      epoch=$(awk -v n="$name" '$1 == "sentinel" && $2 == "config-epoch" && $3 == n { print $4 }' "$file")
      log "no other sentinel answers: monitoring $host:$port as last recorded"
    else
      host=${hosts[0]} port=${ports[0]} epoch=0
      log "a new group: monitoring node 0, $host:$port"
    fi
  fi
  if ((${epoch:-0} > ${current_epoch:-0})); then current_epoch=$epoch; fi
  local tmp=$file.new
  {
    echo "# Generated by redis-entrypoint.sh for node $self ($me); the sentinel rewrites it as it learns."
    echo "port $my_sport"
    echo "bind $bind"
    echo "dir $dir"
    # Hostnames everywhere (StatefulSet DNS names survive a pod's restart, its address does not);
    # before the monitor line, which names a host.
    echo "sentinel resolve-hostnames yes"
    echo "sentinel announce-hostnames yes"
    echo "sentinel announce-ip $me"
    echo "sentinel announce-port $my_sport"
    if [[ -n $myid ]]; then echo "sentinel myid $myid"; fi
    echo "sentinel monitor $name $host $port $quorum"
    echo "sentinel config-epoch $name ${epoch:-0}"
    echo "sentinel current-epoch ${current_epoch:-0}"
    cat "$conf_dir/sentinel.conf"
  } >"$tmp"
  mv "$tmp" "$file"
  log "starting redis-sentinel (config $file)"
  exec redis-sentinel "$file"
}

info_field() { cli "$local_host" "$my_port" INFO replication | awk -F: -v k="$1" '$1 == k { print $2 }'; }

# Alive: answers at all, including while it loads its AOF or has lost its primary.
live() {
  local reply
  reply=$(cli "$local_host" "$my_port" PING)
  [[ $reply == PONG || $reply == LOADING* || $reply == MASTERDOWN* ]] || die "PING: '${reply:-no answer}'"
}

# Ready: a primary, or a replica in sync with its primary (a node drain must not take a second
# node while this one still copies the data).
ready() {
  [[ $(cli "$local_host" "$my_port" PING) == PONG ]] || die "PING not answered"
  local role
  role=$(info_field role)
  [[ $role == master ]] && return 0
  [[ $role == slave && $(info_field master_link_status) == up ]] || die "role '$role', link to the primary not up"
}

sentinel_ready() {
  [[ $(cli "$local_host" "$my_sport" SENTINEL get-master-addr-by-name "$name" | wc -l) -eq 2 ]] ||
    die "the sentinel knows no primary for '$name'"
}

# A planned failover: pause writes here, let every replica catch up with every write this primary
# acknowledged, have a sentinel promote one, then turn this node into its replica and drop its
# clients before the pause ends. Writes sent meanwhile wait, then fail (control reconnects through
# the sentinels and retries): none is acknowledged here and lost. (Sentinel itself would demote this
# node only some seconds later, while it went on taking writes.)
failover() {
  local role
  role=$(info_field role)
  if [[ $role != master ]]; then
    log "not the primary (role '$role'): nothing to do"
    return 0
  fi
  local pause_ms=${LK_REDIS_FAILOVER_PAUSE_MS:-10000}
  local deadline=$((SECONDS + pause_ms / 1000))
  cli "$local_host" "$my_port" CLIENT PAUSE "$pause_ms" WRITE >/dev/null
  # Every write acknowledged so far is within this offset. Replicas report theirs each second; wait
  # until every online one is past it, so that whichever the sentinel picks has them all.
  local offset
  offset=$(info_field master_repl_offset)
  until cli "$local_host" "$my_port" INFO replication | awk -F: -v want="$offset" '
      $1 ~ /^slave[0-9]+$/ && $2 ~ /state=online/ { n++; if (!match($2, /offset=[0-9]+/) || substr($2, RSTART + 7, RLENGTH - 7) + 0 < want + 0) behind++ }
      END { exit (n == 0 || behind) }'; do
    if ((SECONDS >= deadline - 5)); then
      cli "$local_host" "$my_port" CLIENT UNPAUSE >/dev/null
      die "no online replica, or one behind this primary: not failing over"
    fi
    sleep 0.2
  done
  # Another node's sentinel first: this pod's own may be stopping with it.
  local order=() i reply="" sentinel_host sentinel_port
  for i in "${!hosts[@]}"; do if ((i != self)); then order+=("$i"); fi; done
  order+=("$self")
  for i in "${order[@]}"; do
    sentinel_host=${hosts[i]} sentinel_port=${sports[i]}
    reply=$(cli "$sentinel_host" "$sentinel_port" SENTINEL FAILOVER "$name")
    [[ $reply == OK ]] && break
  done
  if [[ $reply != OK ]]; then
    cli "$local_host" "$my_port" CLIENT UNPAUSE >/dev/null
    die "SENTINEL FAILOVER: '${reply:-no sentinel answered}'"
  fi
  local host="" port=""
  while :; do
    read -r host port < <(cli "$sentinel_host" "$sentinel_port" SENTINEL get-master-addr-by-name "$name" | paste -sd' ')
    if [[ -n $host ]] && ! is_me "$host" "$port"; then break; fi
    if ((SECONDS >= deadline)); then
      cli "$local_host" "$my_port" CLIENT UNPAUSE >/dev/null
      die "the sentinel promoted no replica within $((pause_ms / 1000)) s"
    fi
    sleep 0.2
  done
  cli "$local_host" "$my_port" REPLICAOF "$host" "$port" >/dev/null
  cli "$local_host" "$my_port" CLIENT KILL TYPE normal >/dev/null
  cli "$local_host" "$my_port" CLIENT UNPAUSE >/dev/null
  [[ $(info_field role) == slave ]] || die "REPLICAOF $host $port did not take"
  log "$host:$port is the primary now; this node replicates it"
}

case ${1:-} in
  server) server ;;
  sentinel) sentinel ;;
  live) live ;;
  ready) ready ;;
  sentinel-ready) sentinel_ready ;;
  failover) failover ;;
  # Termination goes on whatever happens here (the StatefulSet's grace period bounds it).
  pre-stop) failover || true ;;
  *) die "usage: $0 server|sentinel|live|ready|sentinel-ready|failover|pre-stop" ;;
esac
