#!/usr/bin/env bash
# Relay benchmark: N concurrent calls (2 x 50 packets/s of 172-byte RTP each) through latchkey-relay,
# rtpengine (userspace forwarding) and a minimal single-threaded forwarder, on loopback (latchkey-epoll:
# latchkey-relay with --packet_io=epoll instead of the default, io_uring where available). The relay
# under test is pinned to one core, the load generator (relay_bench) to the other. One JSON object per
# run on stdout, also saved under build/bench/relay-<date>.jsonl; the first line describes the setup.
# See docs/PERFORMANCE.md ("## Relay") for the fields and the results.
#
#   scripts/bench-relay.sh [--topology=loopback|veth] [--calls="250 500 1000 1500 2000"]
#                          [--targets="latchkey latchkey-epoll rtpengine minimal"]
#                          [--duration=10s] [--warmup=4s] [--threads=1] [--rtpengine_threads=1]
#                          [--repeat=1] [--rt=1] [--nice=-15] [--no-build] [--baseline_relay=PATH]
#                          [--relay_bench=PATH] [--coalesce_us=0] [-- extra relay_bench flags]
#
# --topology=veth (root): the kernel fast path's benchmark. Two network namespaces of this run's own,
# the phones' (relay_bench) and the relay's, joined by one veth pair; the relay under test binds its
# veth address, where latchkey-relay --fast_path=xdp attaches native XDP (lo has none) and tc its
# filter. Targets latchkey-off, latchkey-tc and latchkey-xdp (latchkey-relay --fast_path=off|tc|xdp;
# the default targets there, with rtpengine and minimal; default --calls="500 1000 1500 2000 2500")
# run under the same load in one run. Both veths use threaded NAPI, so the kernel's packet work of
# each side is a kthread pinned to that side's core: relay CPU per relayed packet = (relay process +
# relay veth's NAPI kthread) / forwarded packets ("relay_cpu_ns_per_pkt"). Namespaces are named
# lkb-<pid>-{gen,relay} and removed on exit, also on failure or Ctrl-C. --coalesce_us=N: interrupt
# moderation on the relay's veth, as a NIC's rx-usecs (NAPI polls again N us later instead of being
# woken per arrival; 0, the default: off). See docs/PERFORMANCE.md ("### Kernel fast path (issue 14):
# the veth topology").
#
# --baseline_relay: another latchkey-relay binary (say, built from the commit before a change) measured
# as target `latchkey-before` in the same run, side by side with `latchkey`. --relay_bench: the load
# generator from elsewhere than build/ (say, a build tree of its own while build/ is busy).
#
# --threads: latchkey-relay packet threads; --rtpengine_threads: rtpengine --num-threads. One core for
# the relay is the fair comparison, so both default to 1. The machine is shared, and other work on it
# preempts the measured processes for milliseconds at a time (p99 latencies of 5-10 ms that are not the
# relay's): --rt=1 runs the relay under test, latchkey-control and the generator SCHED_RR (priority 10;
# the kernel still leaves other tasks a few % of each core), --nice runs the benchmark in a session of
# its own whose scheduling autogroup, and every process in it, get that nice value. --rt=0 --nice=0
# leave priorities alone (and expect noisy latencies).
set -euo pipefail
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$0")/.."

topology=loopback
calls_list=""
targets=""
duration=10s
warmup=4s
threads=1
rtpengine_threads=1
repeat=1
rt=1
nice_level=-15
build=1
baseline_relay=""
relay_bench_bin=""
coalesce_us=0
extra=()
args=("$@")
while (($#)); do
  case "$1" in
    --topology=*) topology="${1#*=}" ;;
    --calls=*) calls_list="${1#*=}" ;;
    --targets=*) targets="${1#*=}" ;;
    --duration=*) duration="${1#*=}" ;;
    --warmup=*) warmup="${1#*=}" ;;
    --threads=*) threads="${1#*=}" ;;
    --rtpengine_threads=*) rtpengine_threads="${1#*=}" ;;
    --repeat=*) repeat="${1#*=}" ;;
    --nice=*) nice_level="${1#*=}" ;;
    --rt=*) rt="${1#*=}" ;;
    --no-build) build=0 ;;
    --baseline_relay=*) baseline_relay="${1#*=}" ;;
    --relay_bench=*) relay_bench_bin="${1#*=}" ;;
    --coalesce_us=*) coalesce_us="${1#*=}" ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo pipefail/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "bench-relay: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$topology" in
  loopback)
    : "${calls_list:=250 500 1000 1500 2000}"
    : "${targets:=latchkey latchkey-epoll rtpengine minimal}"
    ;;
  veth)
    : "${calls_list:=500 1000 1500 2000 2500}"
    : "${targets:=latchkey-off latchkey-tc latchkey-xdp rtpengine minimal}"
    ;;
  *) echo "bench-relay: --topology must be loopback or veth" >&2; exit 2 ;;
esac
calls_list="${calls_list//,/ }"
targets="${targets//,/ }"

# A session of its own: its autogroup (the unit the kernel shares CPU between when autogrouping is on)
# is the only thing --nice changes, and it goes away with the benchmark. Signals are passed on.
if [[ "$nice_level" != 0 && -z "${LATCHKEY_BENCH_SESSION:-}" ]] && command -v setsid >/dev/null; then
  LATCHKEY_BENCH_SESSION=1 setsid --wait "$self" "${args[@]}" &
  session=$!
  trap 'kill -TERM -- -$session 2>/dev/null || true' INT TERM
  rc=0
  wait $session || rc=$?
  # A signal interrupts the first wait; the session cleans up and exits.
  kill -0 $session 2>/dev/null && { wait $session || rc=$?; }
  exit $rc
fi

if [[ "$nice_level" != 0 ]]; then
  if [[ -w /proc/self/autogroup ]]; then echo "$nice_level" >/proc/self/autogroup 2>/dev/null || true; fi
  renice -n "$nice_level" -p $$ >/dev/null 2>&1 || true  # children inherit it
fi

if ((build)); then
  scripts/build.sh default --target latchkey-control latchkey-relay relay_bench minimal_forwarder >/dev/null
fi
command -v taskset >/dev/null || { echo "bench-relay: taskset (util-linux) is required" >&2; exit 1; }
gen_cpu=0; relay_cpu=1
[ "$(nproc)" -ge 2 ] || { relay_cpu=0; echo "bench-relay: warning: one core, relay and generator share it" >&2; }

if [[ $topology == veth ]]; then
  [[ $(id -u) -eq 0 ]] || { echo "bench-relay: --topology=veth needs root (network namespaces, bpf())" >&2; exit 1; }
  for tool in ip tc clang python3; do
    command -v "$tool" >/dev/null || { echo "bench-relay: --topology=veth needs $tool" >&2; exit 1; }
  done
fi

prio=()
if [[ "$rt" == 1 ]]; then
  if chrt -r 10 true 2>/dev/null; then prio=(chrt -r 10); else echo "bench-relay: warning: chrt -r failed, running without real-time priority" >&2; rt=0; fi
fi

out=build/bench; mkdir -p "$out"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results="$out/relay-$stamp.jsonl"
logs="$out/relay-$stamp-logs"; mkdir -p "$logs"
# The build tree may be shared and rebuilt while this runs: measure copies taken now (removed at exit).
bin="$logs/bin"; mkdir -p "$bin"
pids=()
namespaces=()
cleanup() {
  local p ns
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$bin"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for b in services/control/latchkey-control media-relay/latchkey-relay tests/benchmark/relay_bench \
         tests/benchmark/minimal_forwarder; do
  cp "build/$b" "$bin/"
  strip --strip-debug "$bin/$(basename "$b")" 2>/dev/null || true
done
control_bin=$bin/latchkey-control
relay_bin=$bin/latchkey-relay
[[ -z "$relay_bench_bin" ]] || cp "$relay_bench_bin" "$bin/relay_bench"
if [[ -n "$baseline_relay" ]]; then
  cp "$baseline_relay" "$bin/latchkey-relay-before"
  strip --strip-debug "$bin/latchkey-relay-before" 2>/dev/null || true
fi
git_rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$([[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] && echo true || echo false)

# Ports: phones 10000-17999 (relay_bench: 4 per call), minimal_forwarder 20000+, latchkey-relay media
# 20000-31999 (below the ephemeral range), rtpengine media 40000-49999 and ng 2223, control gRPC 7620
# (NatControlService) and 7621 (its worker API, which the relay registers with), relay gRPC 7630,
# metrics 9620/9630 (apart from bench-control.sh's 75xx). On loopback all of them on 127.0.0.1; in the
# veth topology the relays and control are in the relay namespace, where the media ranges can be
# wider (the phones are elsewhere): 20000-59999 for both relays.
relay_ip=127.0.0.1
gen_ip=127.0.0.1
media_port_max=31999
rtpengine_ports=(40000 49999)
minimal_base=20000
in_relay=()  # runs a command in the relay's namespace (veth)
in_gen=()    # ... in the phones' one

# ---------------------------------------------------------------------------------------------------
# The veth topology:
#
#   namespace lkb-PID-gen                      namespace lkb-PID-relay
#   relay_bench (phones), core 0               relay under test + latchkey-control, core 1
#   bgPID 198.18.0.2/24  <---- veth pair ---->  brPID 198.18.0.1/24  (--media_ip; XDP / tc attach here)
#   XDP_PASS program, GRO on, tx csum off       GRO on
#   NAPI kthread napi/bgPID-* pinned to core 0  NAPI kthread napi/brPID-* pinned to core 1
#
# Why each setting (on kernel 6.18; see docs/PERFORMANCE.md):
# - GRO on both veths: a veth without it (and without XDP) has no NAPI; what it receives is then
#   processed in the sender's softirq, on the other side's core, and not by a thread of its own.
# - Threaded NAPI (/sys/class/net/DEV/threaded) on both: each side's receive work is a kthread, pinned
#   to that side's core and measured exactly (schedstat). With --rt=1 both are SCHED_FIFO 11, above
#   the benchmark's processes (SCHED_RR 10), as a softirq would be: the phones' then stamps arrivals
#   (SO_TIMESTAMPNS, taken in that poll) when they arrive, and the relay's receive work preempts the
#   relay process, so that its periodic work never holds packets in the veth's 256-frame ring. (Past
#   its capacity a userspace relay then starves behind its own receive work: receive livelock.)
# - An XDP_PASS program on the phones' veth: frames the relay sends back with XDP_TX reach the peer's
#   ring, but its NAPI is only scheduled if the peer runs XDP (GRO alone: the relay's veth counts
#   them as tx drops and the phones hear nothing).
# - tx checksum offload off on the phones' veth (the ethtool ioctl; ethtool is not installed): a local
#   socket's datagram crosses veth with only a partial checksum, which XDP's incremental update turns
#   into a wrong one. relay_bench's raw sends compute theirs in software anyway (--udp_checksum).

veth_ethtool() {  # NS DEV SETTING=on|off...: tx/GRO offloads set and read back; prints "DEV tx=0 gro=1"
  ip netns exec "$1" python3 tests/netdev_offloads.py "${@:2}"
}

napi_tids() {  # DEV: the ids of DEV's threaded NAPI kthreads ("napi/DEV-<id>"), comma-separated
  ps -e -o pid=,comm= | awk -v prefix="napi/$1-" 'index($2, prefix) == 1 { printf "%s%s", sep, $1; sep = "," }'
}

# Finds both sides' NAPI kthreads (again before every run: they must be the ones measured) and pins them.
pin_napi() {
  relay_tids=$(napi_tids "$dev_relay")
  gen_tids=$(napi_tids "$dev_gen")
  [[ -n $relay_tids && -n $gen_tids ]] || { echo "bench-relay: no threaded NAPI kthreads for $dev_relay / $dev_gen" >&2; exit 1; }
  local tid
  for tid in ${relay_tids//,/ }; do
    taskset -pc "$relay_cpu" "$tid" >/dev/null
    [[ $rt == 1 ]] && chrt -f -p 11 "$tid"
  done
  for tid in ${gen_tids//,/ }; do
    taskset -pc "$gen_cpu" "$tid" >/dev/null
    [[ $rt == 1 ]] && chrt -f -p 11 "$tid"
  done
  return 0
}

veth_setup() {
  ns_gen=lkb-$$-gen ns_relay=lkb-$$-relay dev_gen=bg$$ dev_relay=br$$
  relay_ip=198.18.0.1 gen_ip=198.18.0.2  # RFC 2544's benchmarking range, inside our namespaces only
  # Namespaces left by a run that was killed (SIGKILL skips the trap): its pid is in the name.
  local ns owner
  for ns in $(ip netns list | grep -oE '^lkb-[0-9]+-(gen|relay)'); do
    owner=${ns#lkb-}; owner=${owner%%-*}
    kill -0 "$owner" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
  done
  for ns in "$ns_gen" "$ns_relay"; do
    ip netns add "$ns" || { echo "bench-relay: ip netns add $ns failed" >&2; exit 1; }
    namespaces+=("$ns")
    ip -n "$ns" link set lo up
    # Clients' ephemeral ports (gRPC, ng) away from the phones' and the relays' ranges.
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="61000 65000"
  done
  ip -n "$ns_gen" link add "$dev_gen" type veth peer name "$dev_relay" netns "$ns_relay"
  ip -n "$ns_gen" addr add "$gen_ip/24" dev "$dev_gen"
  ip -n "$ns_relay" addr add "$relay_ip/24" dev "$dev_relay"
  ip -n "$ns_gen" link set "$dev_gen" up
  ip -n "$ns_relay" link set "$dev_relay" up
  local got
  got=$(veth_ethtool "$ns_relay" "$dev_relay" gro=on) || got="ioctl failed"
  if [[ $got != "$dev_relay gro=1" ]]; then echo "bench-relay: cannot turn GRO on on $dev_relay: $got" >&2; exit 1; fi
  got=$(veth_ethtool "$ns_gen" "$dev_gen" gro=on tx=off) || got="ioctl failed"
  if [[ $got != "$dev_gen gro=1 tx=0" ]]; then echo "bench-relay: cannot set $dev_gen's offloads: $got" >&2; exit 1; fi
  # The phones' veth: XDP_TX'd frames from the relay's veth are only received by a peer that runs XDP.
  clang -O2 -target bpf -c tests/xdp_pass.bpf.c -o "$logs/xdp_pass.o" ||
    { echo "bench-relay: cannot build the XDP_PASS program with clang -target bpf" >&2; exit 1; }
  ip -n "$ns_gen" link set dev "$dev_gen" xdpdrv obj "$logs/xdp_pass.o" sec xdp ||
    { echo "bench-relay: cannot attach native XDP to $dev_gen" >&2; exit 1; }
  local dev
  for dev in "$dev_gen:$ns_gen" "$dev_relay:$ns_relay"; do
    ip netns exec "${dev#*:}" sh -c "echo 1 >/sys/class/net/${dev%%:*}/threaded" ||
      { echo "bench-relay: cannot switch ${dev%%:*} to threaded NAPI" >&2; exit 1; }
  done
  if ((coalesce_us > 0)); then
    # Interrupt moderation, as a NIC's rx-usecs: NAPI polls again after this long instead of being
    # woken per arrival (gro_flush_timeout with napi_defer_hard_irqs).
    ip netns exec "$ns_relay" sh -c "echo $((coalesce_us * 1000)) >/sys/class/net/$dev_relay/gro_flush_timeout &&
      echo 2 >/sys/class/net/$dev_relay/napi_defer_hard_irqs" ||
      { echo "bench-relay: cannot set $dev_relay's NAPI deferral" >&2; exit 1; }
  fi
  pin_napi
  in_relay=(ip netns exec "$ns_relay")
  in_gen=(ip netns exec "$ns_gen")
  media_port_max=59999
  rtpengine_ports=(20000 59999)
  echo "bench-relay: veth topology: $ns_gen ($dev_gen $gen_ip, NAPI kthread $gen_tids on core $gen_cpu)" \
    "<-> $ns_relay ($dev_relay $relay_ip, NAPI kthread $relay_tids on core $relay_cpu)" >&2
}

# Counters of a namespace / device, for the per-run differences appended to each JSON line.
udp_counter() {  # NS NAME: a field of the Udp: lines of /proc/net/snmp in NS
  # shellcheck disable=SC2016  # awk's own $fields
  ip netns exec "$1" awk -v want="$2" '$1 == "Udp:" && !n { n = split($0, name); next }
    $1 == "Udp:" { for (i = 1; i <= n; i++) if (name[i] == want) print $i }' /proc/net/snmp
}
dev_drops() {  # NS DEV: "rx_dropped tx_dropped"
  ip netns exec "$1" cat "/sys/class/net/$2/statistics/rx_dropped" "/sys/class/net/$2/statistics/tx_dropped" | tr '\n' ' '
}
veth_counters() {  # csum errors (phones), rcvbuf errors (phones, relay), rx/tx drops (relay's veth, phones' veth)
  echo "$(udp_counter "$ns_gen" InCsumErrors) $(udp_counter "$ns_gen" RcvbufErrors) $(udp_counter "$ns_relay" RcvbufErrors)" \
    "$(dev_drops "$ns_relay" "$dev_relay") $(dev_drops "$ns_gen" "$dev_gen")"
}

if [[ $topology == veth ]]; then veth_setup; fi
control_addr=$relay_ip:7620
worker_addr=127.0.0.1:7621
ng_addr=$relay_ip:2223
metrics_url=http://$relay_ip:9630/metrics

# rtpengine: the Debian package, installed on first use; the target is skipped if that fails.
want_rtpengine=0
for t in $targets; do [[ $t == rtpengine ]] && want_rtpengine=1; done
skipped=()  # "target|reason": written into the results as {"target":...,"skipped":...}
if ((want_rtpengine)) && ! command -v rtpengine >/dev/null; then
  echo "bench-relay: installing rtpengine-daemon" >&2
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO=sudo
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rtpengine-daemon; } >"$logs/rtpengine-install.log" 2>&1 \
     || ! command -v rtpengine >/dev/null; then
    echo "bench-relay: SKIPPING target rtpengine: apt-get install rtpengine-daemon failed (see $logs/rtpengine-install.log)" >&2
    targets=$(echo " $targets " | sed 's/ rtpengine / /g')
    skipped+=("rtpengine|apt-get install rtpengine-daemon failed")
  fi
fi
if [[ $topology == loopback && " $targets " == *" latchkey-xdp "* ]]; then
  echo "bench-relay: SKIPPING target latchkey-xdp: lo has no native XDP (use --topology=veth)" >&2
  targets=$(echo " $targets " | sed 's/ latchkey-xdp / /g')
  skipped+=("latchkey-xdp|lo has no native XDP; run it with --topology=veth")
fi


# Stops the given pids: TERM, then KILL after 10 s.
stop() {
  local p deadline=$((SECONDS + 10))
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do
    while kill -0 "$p" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}

port_busy() { [[ -n "$(ss -Hlun "sport = :$1" 2>/dev/null)" ]]; }

seconds_of() {  # 10s, 500ms, 2m -> whole seconds (rounded up)
  case "$1" in
    *ms) echo $(( (${1%ms} + 999) / 1000 )) ;;
    *s) echo "${1%s}" ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *) echo 60 ;;
  esac
}
# Setup and teardown of 2000 calls take a few seconds; a run never takes longer than this.
run_limit=$(( $(seconds_of "$warmup") + $(seconds_of "$duration") + 120 ))

loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
topology_json="\"topology\":\"$topology\""
if [[ $topology == veth ]]; then
  topology_json+=",\"namespaces\":[\"$ns_gen\",\"$ns_relay\"],\"relay_dev\":\"$dev_relay\",\"relay_ip\":\"$relay_ip\",\"gen_dev\":\"$dev_gen\",\"gen_ip\":\"$gen_ip\""
  topology_json+=",\"napi\":\"threaded, kthreads pinned: relay $relay_tids on core $relay_cpu, phones $gen_tids on core $gen_cpu$([[ $rt == 1 ]] && echo ', SCHED_FIFO 11')\",\"coalesce_us\":$coalesce_us"
fi
echo "{\"bench\":\"relay\",\"date\":\"$stamp\",$topology_json,\"cpus\":$(nproc),\"gen_cpu\":$gen_cpu,\"relay_cpu\":$relay_cpu,\"nice\":$nice_level,\"rt\":$rt,\"duration\":\"$duration\",\"warmup\":\"$warmup\",\"latchkey_threads\":$threads,\"rtpengine_threads\":$rtpengine_threads,\"kernel\":\"$(uname -r)\",\"git\":\"$git_rev\",\"tree_modified\":$git_dirty,\"loadavg\":\"$loadavg\"}" | tee "$results"
for s in "${skipped[@]}"; do
  echo "{\"target\":\"${s%%|*}\",\"skipped\":\"${s#*|}\"}" | tee -a "$results"
done

# Waits until the latchkey-relay PID serves its metrics (it is up, its fast path attached) or exits.
relay_up() {
  local pid=$1 deadline=$((SECONDS + 20))
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || return 1
    "${in_relay[@]}" curl -fsS -m 1 -o /dev/null "$metrics_url" 2>/dev/null && return 0
    sleep 0.2
  done
  return 1
}

run_one() {
  local target=$1 calls=$2 pid note args=() bench_target=$1 packet_io=auto fast_path=""
  local veth_args=() counters_before=""
  case "$target" in
    latchkey|latchkey-epoll|latchkey-before|latchkey-off|latchkey-tc|latchkey-xdp)
      bench_target=latchkey
      [[ $target == latchkey-epoll ]] && packet_io=epoll
      [[ $target == latchkey-off || $target == latchkey-tc || $target == latchkey-xdp ]] && fast_path=${target#latchkey-}
      local relay=$relay_bin relay_flags=()
      if [[ $target == latchkey-before ]]; then
        [[ -x "$bin/latchkey-relay-before" ]] || { echo "bench-relay: latchkey-before needs --baseline_relay" >&2; return; }
        relay=$bin/latchkey-relay-before
      fi
      [[ -n $fast_path ]] && relay_flags+=(--fast_path="$fast_path")
      # In the veth topology control serves the phones' namespace: plaintext on a non-loopback address
      # needs --allow_insecure (the namespaces are this run's own).
      local control_flags=(--listen="$control_addr" --worker_listen="$worker_addr")
      [[ $topology == veth ]] && control_flags+=(--allow_insecure) && relay_flags+=(--media_ip="$relay_ip")
      "${in_relay[@]}" taskset -c "$relay_cpu" "${prio[@]}" "$control_bin" "${control_flags[@]}" --metrics_listen=127.0.0.1:9620 \
        --log_level=warning >>"$logs/control.log" 2>&1 &
      pids+=($!)
      "${in_relay[@]}" taskset -c "$relay_cpu" "${prio[@]}" "$relay" --control="$worker_addr" --listen=127.0.0.1:7630 \
        --metrics_listen="$relay_ip:9630" --worker_id=bench-relay --port_min=20000 --port_max=$media_port_max \
        --port_quarantine=1s --max_sessions=100000 --threads="$threads" --packet_io=$packet_io --log_level=warning \
        "${relay_flags[@]}" >>"$logs/relay.log" 2>&1 &
      pid=$!; pids+=("$pid")
      note="$(basename "$relay") --threads=$threads --packet_io=$packet_io${fast_path:+ --fast_path=$fast_path}; latchkey-control on the same core (idle while measuring)"
      args=(--control="$control_addr")
      if [[ -n $fast_path || $topology == veth ]]; then
        args+=(--metrics_url="$metrics_url")
        if ! relay_up "$pid"; then
          local why
          why=$({ grep -v 'registration with control failed' "$logs/relay.log" || true; } | tail -n 1 | tr -d '"')
          why=${why//\\/}
          echo "{\"target\":\"$target\",\"calls\":$calls,\"error\":\"latchkey-relay did not come up: $why\"}" | tee -a "$results"
          stop "${pids[@]}"
          return
        fi
      fi
      ;;
    rtpengine)
      if [[ $topology == loopback ]] && port_busy 2223; then
        echo "bench-relay: SKIPPING rtpengine: UDP 127.0.0.1:2223 is already in use" >&2
        return
      fi
      "${in_relay[@]}" taskset -c "$relay_cpu" "${prio[@]}" rtpengine --config-file=none --foreground --log-stderr --log-level=4 --table=-1 \
        --interface="$relay_ip" --listen-ng="$ng_addr" --port-min="${rtpengine_ports[0]}" --port-max="${rtpengine_ports[1]}" \
        --num-threads="$rtpengine_threads" --timeout=120 --delete-delay=0 >>"$logs/rtpengine.log" 2>&1 &
      pid=$!; pids+=("$pid")
      note="rtpengine $(rtpengine --version 2>&1 | sed -n 's/^Version: //p') --num-threads=$rtpengine_threads, userspace only (--table=-1)"
      args=(--ng="$ng_addr")
      ;;
    minimal)
      "${in_relay[@]}" taskset -c "$relay_cpu" "${prio[@]}" "$bin/minimal_forwarder" --calls="$calls" --base_port=$minimal_base \
        --ip="$relay_ip" >>"$logs/minimal.log" 2>&1 &
      pid=$!; pids+=("$pid")
      note="minimal_forwarder, one thread"
      args=(--minimal_base_port="$minimal_base" --minimal_ip="$relay_ip")
      sleep 0.3
      ;;
    *) echo "bench-relay: unknown target $target" >&2; return ;;
  esac
  if [[ $topology == veth ]]; then
    pin_napi
    veth_args=(--phone_ip="$gen_ip" --udp_checksum --relay_tids="$relay_tids" --gen_tids="$gen_tids"
               --relay_core="$relay_cpu" --gen_core="$gen_cpu" --netdev="$dev_gen")
    counters_before=$(veth_counters)
  fi
  local line rc=0
  line=$(timeout --foreground --kill-after=5 "$run_limit" "${in_gen[@]}" taskset -c "$gen_cpu" "${prio[@]}" "$bin/relay_bench" --target="$bench_target" \
           --calls="$calls" --duration="$duration" --warmup="$warmup" --target_pid="$pid" --note="$note" \
           "${args[@]}" "${veth_args[@]}" "${extra[@]}") || rc=$?
  if [[ -z "$line" ]]; then
    line="{\"target\":\"$target\",\"calls\":$calls,\"error\":\"relay_bench exited with $rc$([[ $rc == 124 ]] && echo ' (timed out)')\"}"
  fi
  [[ $target != "$bench_target" ]] && line="${line/\"target\":\"$bench_target\"/\"target\":\"$target\"}"
  kill -0 "$pid" 2>/dev/null || line="${line%\}},\"target_died\":true}"
  if [[ $topology == veth ]]; then
    local b a
    read -r -a b <<<"$counters_before"
    read -r -a a <<<"$(veth_counters)"
    # Differences over the whole run (setup, warm-up, window, grace, teardown): checksum errors at the
    # phones (a wrong rewrite), receive buffer overflows (phones, relay), veth drops (a receive ring of
    # 256 frames full; one drop may show on both ends, e.g. an XDP_TX frame the phones' veth did not
    # take as the relay veth's tx and the phones' veth's rx drop).
    line="${line%\}},\"topology\":\"veth\",\"gen_udp_csum_errors\":$((a[0] - b[0])),\"gen_udp_rcvbuf_errors\":$((a[1] - b[1]))"
    line+=",\"relay_udp_rcvbuf_errors\":$((a[2] - b[2])),\"relay_veth_rx_drops\":$((a[3] - b[3])),\"relay_veth_tx_drops\":$((a[4] - b[4]))"
    line+=",\"gen_veth_rx_drops\":$((a[5] - b[5])),\"gen_veth_tx_drops\":$((a[6] - b[6]))}"
  fi
  echo "$line" | tee -a "$results"
  stop "${pids[@]}"
  if [[ $topology == veth ]]; then
    # A relay that did not exit cleanly leaves its tc filter (inert within seconds, but parsed): no
    # fast path of one target may stay for the next.
    ip -n "$ns_relay" link set dev "$dev_relay" xdp off 2>/dev/null || true
    tc -n "$ns_relay" qdisc del dev "$dev_relay" clsact 2>/dev/null || true
  fi
}

for ((r = 0; r < repeat; r++)); do
  for target in $targets; do
    for calls in $calls_list; do
      run_one "$target" "$calls"
    done
  done
done
echo "bench-relay: results in $results, relay logs in $logs" >&2
