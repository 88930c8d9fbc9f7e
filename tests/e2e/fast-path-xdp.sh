#!/usr/bin/env bash
# The relay's kernel fast path in native XDP mode (latchkey-relay --fast_path=xdp), over veth between
# network namespaces: the XDP version of tests/integration/fast_path_test.cc (which runs tc on a
# loopback: lo has no native XDP). Topology, all addresses inside this test's own namespaces:
#
#   relay ns (lk-e2e-PID-relay)  rel0 203.0.113.10   control and relay (gRPC, metrics on 127.0.0.1);
#                                                    the relay's media address: XDP attaches to rel0
#   lan ns   (lk-e2e-PID-lan)    a router: rel1 203.0.113.1, pa1 198.51.100.1, pb1 192.0.2.1, px1 198.18.0.1
#   phone A  (lk-e2e-PID-a)      pa0 198.51.100.2    the caller
#   phone B  (lk-e2e-PID-b)      pb0 192.0.2.2       the callee
#   attacker (lk-e2e-PID-x)      px0 198.18.0.66
#
# Every phone reaches the relay through the router, so both legs leave the relay by rel0 again
# (XDP_TX) towards one next hop (the router's MAC, from the relay's neighbour table). Two veth facts
# shape the router's side of that link, rel1 (what would be the wire and the switch for a real NIC):
#   * XDP_TX'd frames need an XDP program on the peer: rel0's XDP_TX puts them on rel1's NAPI ring,
#     and the veth driver kicks that NAPI only when rel1 has an XDP program itself. GRO on rel1
#     (the other documented way to give a veth NAPI) is not enough for XDP_TX on this kernel
#     (6.18): the frames sit in the 256-entry ring until other traffic wakes it, then are dropped
#     (rel0's TX dropped). So rel1 gets a do-nothing XDP_PASS program, compiled here with clang.
#   * tx checksum offload off on rel1: a datagram sent by a local socket crosses veth (and a
#     forwarding router) carrying only the pseudo-header's partial checksum (CHECKSUM_PARTIAL: the
#     "hardware" is to finish it). XDP sees bytes, updates that half checksum as if it were whole,
#     and the phone's UDP drops the result (Udp InCsumErrors). With rel1 offering no checksum
#     offload, the router completes every checksum in software before it hands the datagram to
#     rel1, so rel0 receives what a real NIC does: complete checksums. `ethtool` is not installed;
#     tests/netdev_offloads.py makes its ioctl (`ethtool -K rel1 tx off`).
#
# Asserts: (1) the relay runs with latchkey_relay_fast_path{mode="xdp"} 1, a native XDP program on
# rel0; (2) a call placed with `latchkeyctl sessions offer|answer` (SDPs naming the phones' real
# addresses) carries 200 RTP packets each way at 20 ms: each phone hears >= 98 % of the other's,
# only the other's, with no UDP checksum error in any namespace, and >= 90 % of all of it was
# counted in the kernel (latchkey_relay_packets_total{direction="in",path="kernel"}); (3)
# latchkey_relay_fast_path_flows is 2 during the call, 0 after `sessions release`, and the kernel
# then forwards nothing; (4) an attacker spraying the caller's relay port with the caller's SSRC
# (marked by sequence numbers the caller never uses) gets nothing to the callee while the call
# goes on in the kernel; (5) after SIGKILL of the relay no XDP program is left on rel0.
# Skips (77) without root, namespaces, bpf() or native XDP on veth. About 15 s.
source "$(dirname "$0")/lib.sh"

# lib.sh's helpers (start_control, ctl, relay_metric) run in $NS_PUB: here the relay's namespace.
NS_PUB=$prefix-relay
NS_LAN=$prefix-lan
NS_A=$prefix-a
NS_B=$prefix-b
NS_X=$prefix-x
ROUTER_IP=203.0.113.1
PHONE_A_IP=198.51.100.2
PHONE_B_IP=192.0.2.2
ATTACKER_IP=198.18.0.66
PHONE_A_PORT=40000
PHONE_B_PORT=42000
ATTACKER_PORT=44000
PHONE_A_SSRC=0x0A11CE01
PHONE_B_SSRC=0x0B0B0B02
ATTACK_SEQ=30000  # the attacker's sequence numbers: far from anything the phones send
CALL_ID="fast-xdp-$$@e2e"
RELAY_DEV=rel0

CLANG=$(command -v clang || command -v clang-14) ||
  fail "clang not installed (scripts/install-deps.sh installs it): it compiles the XDP_PASS program for rel1"



# xdp_pass NS DEV: a native XDP program that passes every frame, on DEV.
xdp_pass() {
  if [[ ! -f $scratch/xdp_pass.o ]]; then
    "$CLANG" -O2 -target bpf -c "$e2e_dir/../xdp_pass.bpf.c" -o "$scratch/xdp_pass.o" ||
      fail "clang cannot compile a BPF program"
  fi
  ip -n "$1" link set dev "$2" xdpdrv obj "$scratch/xdp_pass.o" sec xdp 2>"$scratch/xdp_pass.err" ||
    skip "native XDP cannot attach to veth here: $(cat "$scratch/xdp_pass.err")"
}

add_ns() {
  ip netns add "$1" || skip "cannot create network namespaces (ip netns add failed)"
  namespaces+=("$1")
  ip -n "$1" link set lo up
}

# link NS DEV ADDRESS/LEN ROUTER_DEV ROUTER_ADDRESS/LEN: a veth from NS to the router, default route
# through it.
link() {
  ip -n "$1" link add "$2" type veth peer name "$4" netns "$NS_LAN"
  ip -n "$1" addr add "$3" dev "$2"
  ip -n "$NS_LAN" addr add "$5" dev "$4"
  ip -n "$1" link set "$2" up
  ip -n "$NS_LAN" link set "$4" up
  ip -n "$1" route add default via "${5%/*}"
}

build_lab() {
  local ns
  for ns in "$NS_PUB" "$NS_LAN" "$NS_A" "$NS_B" "$NS_X"; do add_ns "$ns"; done
  in_ns "$NS_LAN" sysctl -qw net.ipv4.ip_forward=1
  link "$NS_PUB" "$RELAY_DEV" "$RELAY_IP/24" rel1 "$ROUTER_IP/24"
  link "$NS_A" pa0 "$PHONE_A_IP/24" pa1 198.51.100.1/24
  link "$NS_B" pb0 "$PHONE_B_IP/24" pb1 192.0.2.1/24
  link "$NS_X" px0 "$ATTACKER_IP/24" px1 198.18.0.1/24
  local tx
  tx=$(in_ns "$NS_LAN" "$PY" "$e2e_dir/../netdev_offloads.py" rel1 tx=off) ||
    fail "cannot turn rel1's tx checksum offload off (ethtool ioctl)"
  [[ $tx == "rel1 tx=0" ]] || fail "rel1's tx checksum offload is still on: $tx"
  xdp_pass "$NS_LAN" rel1
}

# start_fast_relay: the relay with --fast_path=xdp on $RELAY_IP (rel0), as lib.sh's start_relay
# otherwise. A relay that exits saying why the fast path is impossible here makes the test skip.
start_fast_relay() {
  # shellcheck disable=SC2046
  run_in "$NS_PUB" "$scratch/relay.log" "$LATCHKEY_RELAY_BIN" --control=127.0.0.1:7401 --listen=127.0.0.1:7410 \
    $(tls_flags worker-relay-e2e) --metrics_listen=127.0.0.1:9410 --worker_id=relay-e2e --media_ip="$RELAY_IP" \
    --threads=1 --port_min=30000 --port_max=30199 --fast_path=xdp
  relay_pid=$last_pid
  local deadline=$((SECONDS + 20))
  until grep -q 'latchkey-relay ready' "$scratch/relay.log"; do
    if ! kill -0 "$relay_pid" 2>/dev/null; then
      wait "$relay_pid" 2>/dev/null || true
      local why
      why=$(grep -o 'fast_path: [^"]*' "$scratch/relay.log" | head -n 1) || true
      [[ -z $why ]] || skip "native XDP is not possible here: the relay says \"$why\""
      fail "the relay exited at start: $(tail -n 5 "$scratch/relay.log")"
    fi
    ((SECONDS < deadline)) || fail "timed out after 20s waiting for relay ready"
    sleep 0.2
  done
  wait_for 20 "relay registered with control" worker_ready
}

# relay_dev_xdp: the relay's program, lk_xdp_relay, is attached to rel0 (and in native mode: `xdp`
# on the first line, `xdpgeneric` for skb mode).
relay_dev_xdp() {
  local link
  link=$(ip -n "$NS_PUB" -d link show dev "$RELAY_DEV")
  head -n 1 <<<"$link" | grep -qw xdp && grep -qE 'prog/xdp id [0-9]+ name lk_xdp_relay' <<<"$link"
}
no_xdp_on_relay_dev() { ! ip -n "$NS_PUB" -d link show dev "$RELAY_DEV" | grep -q 'prog/xdp'; }



kernel_in() { relay_metric 'latchkey_relay_packets_total{direction="in",path="kernel"}'; }
socket_in() { relay_metric 'latchkey_relay_packets_total{direction="in",path="socket"}'; }
flows() { relay_metric latchkey_relay_fast_path_flows; }
flows_are() { [[ $(flows) == "$1" ]]; }
# counted_since KERNEL_BEFORE SOCKET_BEFORE N: the relay has counted N packets in, on both paths,
# since those readings (the kernel's counts are folded into the metric once a second).
counted_since() { (($(kernel_in) - $1 + $(socket_in) - $2 >= $3)); }
# All of the relay's drops, any reason.
drops() {
  in_ns "$NS_PUB" curl -fsS http://127.0.0.1:9410/metrics |
    awk '$1 ~ /^latchkey_relay_drops_total[{]/ { n += $2 } END { printf "%d\n", n }'
}
# Udp InCsumErrors of a namespace (/proc/net/snmp is per namespace).
csum_errors() {
  # shellcheck disable=SC2016 # awk's fields
  in_ns "$1" awk '$1 == "Udp:" && !names { names = split($0, name); next }
                  $1 == "Udp:" { for (i = 1; i <= names; i++) if (name[i] == "InCsumErrors") print $i }' /proc/net/snmp
}
all_csum_errors() {
  local ns out=""
  for ns in "$NS_A" "$NS_B" "$NS_X" "$NS_PUB" "$NS_LAN"; do out+="${ns##*-}=$(csum_errors "$ns") "; done
  echo "${out% }"
}

# poll SECONDS COMMAND...: like wait_for, but returns 1 after SECONDS instead of failing the test.
poll() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# at_least PERCENT GOT OF: GOT >= PERCENT % of OF (and OF > 0).
at_least() { (($3 > 0 && $2 * 100 >= $3 * $1)); }

# media NAME SECONDS [attack]: phone A and phone B stream to their relay ports for SECONDS at 50
# packets/s (continuing their sequence numbers); with `attack` the attacker meanwhile sprays the
# caller's relay port with the caller's SSRC at 100 packets/s. Sets {a,b}_{sent,heard,clean,from}
# (clean=1: heard only the other phone, its SSRC, once per sequence number, from its own relay
# port) and, with attack, x_{sent,heard}.
a_seq=1000
b_seq=5000
media() {
  local name=$1 seconds=$2 attack=${3:-}
  local start_at
  start_at=$("$PY" -c 'import time; print(time.time() + 1.0)')
  local peer=("$PY" "$e2e_dir/rtp_peer.py" --duration="$seconds" --start-at="$start_at" --linger=0.5)
  local jobs=() job
  unset x_sent x_heard
  run_in "$NS_A" "$scratch/$name-a.log" "${peer[@]}" --bind="$PHONE_A_IP:$PHONE_A_PORT" --to="$caller_relay" \
    --ssrc="$PHONE_A_SSRC" --seq="$a_seq"
  jobs+=("$last_pid")
  run_in "$NS_B" "$scratch/$name-b.log" "${peer[@]}" --bind="$PHONE_B_IP:$PHONE_B_PORT" --to="$callee_relay" \
    --ssrc="$PHONE_B_SSRC" --seq="$b_seq"
  jobs+=("$last_pid")
  if [[ $attack == attack ]]; then
    run_in "$NS_X" "$scratch/$name-x.log" "${peer[@]}" --bind="$ATTACKER_IP:$ATTACKER_PORT" --to="$caller_relay" \
      --ssrc="$PHONE_A_SSRC" --seq="$ATTACK_SEQ" --rate=100
    jobs+=("$last_pid")
  fi
  for job in "${jobs[@]}"; do wait "$job" || fail "rtp_peer ($name) failed: $(cat "$scratch/$name"-*.log)"; done
  eval "$("$PY" - "$scratch/$name" "$caller_relay" "$callee_relay" <<'EOF'
import json, os, sys
base, caller_relay, callee_relay = sys.argv[1:]
def result(who):
    path = "%s-%s.log" % (base, who)
    if not os.path.exists(path):
        return None
    return json.loads([l for l in open(path) if l.startswith("{")][-1])
a, b, x = result("a"), result("b"), result("x")
for name, me, other, relay in (("a", a, b, caller_relay), ("b", b, a, callee_relay)):
    seqs = me["received_seqs"]
    clean = (set(me["ssrcs"]) <= {other["ssrc"]} and set(me["received_from"]) <= {relay} and
             me["received"] == me["received_rtp"] and len(set(seqs)) == len(seqs) and
             all(other["first_seq"] <= s < other["next_seq"] for s in seqs))
    print("%s_sent=%d %s_heard=%d %s_clean=%d %s_next_seq=%d %s_from='%s'" % (
        name, me["sent"], name, me["received"], name, clean, name, me["next_seq"], name,
        json.dumps(me["received_from"])))
if x:
    print("x_sent=%d x_heard=%d" % (x["sent"], x["received"]))
EOF
)"
  a_seq=$a_next_seq
  b_seq=$b_next_seq
  local attacker=""
  [[ -z ${x_sent:-} ]] || attacker="; the attacker sent $x_sent, heard $x_heard"
  echo "$name: A sent $a_sent, heard $a_heard from $a_from; B sent $b_sent, heard $b_heard from $b_from$attacker"
}

check_media() {
  local name=$1
  check "$name: B heard >= 98 % of A's packets ($b_heard of $a_sent)" at_least 98 "$b_heard" "$a_sent"
  check "$name: A heard >= 98 % of B's packets ($a_heard of $b_sent)" at_least 98 "$a_heard" "$b_sent"
  check "$name: A heard only B's stream (its SSRC, once each, from $caller_relay)" test "$a_clean" = 1
  check "$name: B heard only A's stream (its SSRC, once each, from $callee_relay)" test "$b_clean" = 1
}

step "building the lab: relay, router, phones A and B, attacker; rel1: tx checksum offload off, XDP_PASS"
build_lab
step "starting control and the relay with --fast_path=xdp on $RELAY_IP ($RELAY_DEV)"
start_control
start_fast_relay
check "(1) the relay's fast path is XDP (latchkey_relay_fast_path{mode=\"xdp\"} 1)" \
  test "$(relay_metric 'latchkey_relay_fast_path{mode="xdp"}')" = 1
check "(1) the relay's lk_xdp_relay is attached to $RELAY_DEV in native mode" relay_dev_xdp

step "offer (A: $PHONE_A_IP:$PHONE_A_PORT) and answer (B: $PHONE_B_IP:$PHONE_B_PORT)"
write_sdp "$scratch/offer.sdp" phone-a "$PHONE_A_IP" "$PHONE_A_PORT"
ctl --json sessions offer --call_id="$CALL_ID" --from_tag=a-1 --sdp="$scratch/offer.sdp" \
  --signaling_source="$PHONE_A_IP:5060" >"$scratch/offer.json" 2>&1 || fail "sessions offer: $(cat "$scratch/offer.json")"
read -r session_id callee_relay < <(json "$scratch/offer.json" \
  "d['session']['sessionId'] + ' ' + '%(ip)s:%(port)s' % d['session']['callee']['relay'][0]['rtp']")
write_sdp "$scratch/answer.sdp" phone-b "$PHONE_B_IP" "$PHONE_B_PORT"
ctl --json sessions answer "$session_id" --to_tag=b-1 --sdp="$scratch/answer.sdp" \
  --signaling_source="$PHONE_B_IP:5060" >"$scratch/answer.json" 2>&1 || fail "sessions answer: $(cat "$scratch/answer.json")"
read -r caller_relay state < <(json "$scratch/answer.json" \
  "'%(ip)s:%(port)s' % d['session']['caller']['relay'][0]['rtp'] + ' ' + d['session']['state']")
echo "session $session_id ($state): A sends to $caller_relay, B to $callee_relay"
[[ $state == SESSION_STATE_ANSWERED ]] || fail "the session is $state, not answered"

step "(2) 4 s of media both ways, 200 packets each at 20 ms"
kernel_before=$(kernel_in)
socket_before=$(socket_in)
media a 4
check_media a
sent=$((a_sent + b_sent))
poll 5 counted_since "$kernel_before" "$socket_before" "$sent" || true
kernel=$(($(kernel_in) - kernel_before))
socket=$(($(socket_in) - socket_before))
echo "the relay counted $kernel packets in the kernel, $socket on the socket path (of $sent sent)"
check "(2) >= 90 % of the $sent packets went through XDP ($kernel in the kernel, $socket on the socket)" \
  at_least 90 "$kernel" "$sent"
csums=$(all_csum_errors)
check "(2) no UDP checksum errors in any namespace (InCsumErrors: $csums)" \
  test -z "$(tr ' ' '\n' <<<"$csums" | grep -v '=0$')"
check "(3) latchkey_relay_fast_path_flows is 2 during the call ($(flows))" flows_are 2

step "(4) the attacker ($ATTACKER_IP) sprays A's relay port with A's SSRC while the call goes on"
drops_before=$(drops)
kernel_before=$(kernel_in)
socket_before=$(socket_in)
media b 2 attack
sent=$((a_sent + b_sent))
poll 5 counted_since "$kernel_before" "$socket_before" $((sent + x_sent)) || true
kernel=$(($(kernel_in) - kernel_before))
socket=$(($(socket_in) - socket_before))
drops_seen=$(($(drops) - drops_before))
echo "the relay counted $kernel packets in the kernel, $socket on the socket path, $drops_seen dropped" \
  "(the phones sent $sent, the attacker $x_sent)"
check "(4) no packet of the attacker's reached B (B heard only A's sequence numbers, $b_heard of them)" \
  test "$b_clean" = 1
check "(4) the attacker heard nothing ($x_heard)" test "$x_heard" = 0
check "(4) XDP handed the attacker's packets to the socket (socket path +$socket)" test "$socket" -ge "$x_sent"
check "(4) ... where the relay dropped all $x_sent of them (+$drops_seen drops)" test "$drops_seen" -ge "$x_sent"
check_media b
check "(4) the call stayed in the kernel meanwhile ($kernel of $sent)" at_least 90 "$kernel" "$sent"
check "(4) still 2 flow entries ($(flows))" flows_are 2
csums=$(all_csum_errors)
check "(4) still no UDP checksum errors (InCsumErrors: $csums)" test -z "$(tr ' ' '\n' <<<"$csums" | grep -v '=0$')"

step "(3) release the session"
ctl sessions release "$session_id" >"$scratch/release.log" 2>&1 || fail "sessions release: $(cat "$scratch/release.log")"
wait_for 5 "no flow entries left" flows_are 0
pass "(3) latchkey_relay_fast_path_flows is 0 after the release"
kernel_before=$(kernel_in)
media c 1
check "(3) after the release nothing is forwarded (B heard $b_heard, A heard $a_heard)" test "$a_heard $b_heard" = "0 0"
check "(3) ... not by the kernel either ($(($(kernel_in) - kernel_before)) packets)" test "$(kernel_in)" = "$kernel_before"

step "(5) SIGKILL the relay: its XDP link dies with it"
check "(5) lk_xdp_relay is still attached to $RELAY_DEV before the kill" relay_dev_xdp
kill -KILL "$relay_pid"
wait "$relay_pid" 2>/dev/null || true
poll 5 no_xdp_on_relay_dev || true
check "(5) no XDP program is left on $RELAY_DEV after SIGKILL" no_xdp_on_relay_dev

((failures == 0)) || fail "$failures check(s) failed"
pass "XDP fast path over veth: forwarded in the kernel with correct checksums, attacker refused, entries removed, link gone with the relay (${SECONDS} s)"
