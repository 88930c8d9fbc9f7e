// The relay's kernel fast path: forwards RTP of latched legs without waking user space. One object,
// two attach points sharing the maps: `lk_xdp_relay` (XDP, in the driver) and `lk_tc_relay` (tc
// ingress, the fallback for interfaces without native XDP).
//
// Rules (fast_path_abi.h has the layouts):
// 1. Only what user space decided is forwarded: an IPv4/UDP datagram whose (source, destination)
//    addresses and ports match a flow entry exactly, that is plain RTP v2 (not RTCP), and whose SSRC
//    is the entry's. The latch in user space writes entries only for latched legs. "Plain": no
//    header extension, no padding, its CSRC list inside the datagram - anything the relay's own
//    RTP parser might refuse goes to it, so the kernel never forwards what the socket path drops.
// 2. Everything else is handed to the socket untouched (XDP_PASS; TC_ACT_UNSPEC, so that the next
//    tc filter - another relay's on the same interface - still sees it), where the latch
//    decides as it does without a fast path: another source (a NAT rebinding, a spoofer), another
//    SSRC, RTCP, STUN, DTLS, anything not RTP, IP options, fragments, VLAN tags, IPv6, a length
//    that does not add up, a bad IPv4 header checksum, a frame for another host, and an entry
//    whose next hop (MAC) is not resolved yet (XDP).
// 3. A forwarded packet leaves as the relay's own: source = the relay port of the other leg,
//    destination = that leg's latched peer, TTL 64, checksums updated (UDP incrementally; a zero
//    UDP checksum, "none", stays zero).
// 4. Nothing is forwarded unless user space has said within the last seconds that it is alive
//    (`lk_control`): entries left by a killed relay go inert.
// 5. Every forwarded packet is counted in its stream's per-CPU counters (packets, bytes, newest
//    arrival and sequence, RFC 3550 sequence range and jitter inputs) for user space to merge.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "fast_path_abi.h"

char LICENSE[] SEC("license") = "GPL";

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, LK_MAX_FLOWS);
  __type(key, struct lk_flow_key);
  __type(value, struct lk_flow_value);
} lk_flows SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, LK_MAX_STREAMS);
  __type(key, __u32);
  __type(value, struct lk_stream_stats);
} lk_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct lk_control);
} lk_control SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 64);
  __type(key, __u32);
  __type(value, struct lk_ifmac);
} lk_ifmacs SEC(".maps");

#define RTP_HEADER_BYTES 12
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

struct lk_match {
  struct iphdr *ip;
  struct udphdr *udp;
  const struct lk_flow_value *flow;
  __u16 seq;
  __u32 rtp_ts;
  __u32 payload_bytes;
  __u64 now;
};

static __always_inline __u16 lk_fold(__u64 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)sum;
}

// Rule 1: fills `m` and returns 1 for a packet to forward, 0 to hand back. `frame_len` is the
// whole frame's length (a scalar from the context: comparing lengths, not pointers at a variable
// offset, keeps the program loadable with CAP_BPF + CAP_NET_ADMIN alone).
static __always_inline int lk_match(void *data, void *data_end, __u32 frame_len, struct lk_match *m) {
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP)) return 0;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > data_end) return 0;
  if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_UDP) return 0;
  if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) return 0;
  // A corrupted header is the stack's to drop, not ours to give a fresh checksum.
  const __u16 *words = (const __u16 *)ip;
  __u64 sum = 0;
#pragma unroll
  for (int i = 0; i < 10; i++) sum += words[i];
  if (lk_fold(sum) != 0xffff) return 0;
  struct udphdr *udp = (void *)(ip + 1);
  __u8 *rtp = (void *)(udp + 1);
  if ((void *)(rtp + RTP_HEADER_BYTES) > data_end) return 0;
  const __u32 ip_len = bpf_ntohs(ip->tot_len);
  const __u32 udp_len = bpf_ntohs(udp->len);
  if (udp_len != ip_len - sizeof(*ip) || udp_len < sizeof(*udp) + RTP_HEADER_BYTES) return 0;
  if (sizeof(struct ethhdr) + ip_len > frame_len) return 0;
  // RFC 7983: 128-191 is RTP or RTCP; version 2 is the top two bits. RFC 5761: RTCP's packet types
  // 192-223 sit where RTP has the marker bit and payload types 64-95.
  if ((rtp[0] & 0xc0) != 0x80 || (rtp[1] >= 192 && rtp[1] <= 223)) return 0;
  // P (0x20) and X (0x10) set, or CSRCs beyond the datagram: handed back (rule 1).
  if ((rtp[0] & 0x30) || RTP_HEADER_BYTES + 4u * (rtp[0] & 0x0f) > udp_len - sizeof(*udp)) return 0;

  struct lk_flow_key key = {
      .src_ip = ip->saddr, .dst_ip = ip->daddr, .src_port = udp->source, .dst_port = udp->dest};
  const struct lk_flow_value *flow = bpf_map_lookup_elem(&lk_flows, &key);
  if (!flow) return 0;
  __u32 zero = 0;
  const struct lk_control *control = bpf_map_lookup_elem(&lk_control, &zero);
  const __u64 now = bpf_ktime_get_ns();
  if (!control || now >= control->alive_until_ns) return 0;
  __be32 ssrc;
  __builtin_memcpy(&ssrc, rtp + 8, sizeof(ssrc));
  if (ssrc != flow->ssrc) return 0;
  m->ip = ip;
  m->udp = udp;
  m->flow = flow;
  m->seq = ((__u16)rtp[2] << 8) | rtp[3];
  m->rtp_ts = ((__u32)rtp[4] << 24) | ((__u32)rtp[5] << 16) | ((__u32)rtp[6] << 8) | rtp[7];
  m->payload_bytes = udp_len - sizeof(*udp);
  m->now = now;
  return 1;
}


// RFC 1624 eqn. 3 over 16-bit words: HC' = ~(~HC + ~m + m').
static __always_inline __u64 lk_csum_replace32(__u64 sum, __be32 from, __be32 to) {
  return sum + (~from & 0xffff) + (~from >> 16) + (to & 0xffff) + (to >> 16);
}
static __always_inline __u64 lk_csum_replace16(__u64 sum, __be16 from, __be16 to) {
  return sum + (__u16)~from + to;
}

// Rule 3 for the IP header: written whole, so its checksum is computed afresh.
static __always_inline void lk_rewrite_ip(struct iphdr *ip, const struct lk_flow_value *flow) {
  ip->saddr = flow->new_src_ip;
  ip->daddr = flow->new_dst_ip;
  ip->ttl = 64;
  ip->check = 0;
  __u16 *words = (__u16 *)ip;
  __u64 sum = 0;
#pragma unroll
  for (int i = 0; i < 10; i++) sum += words[i];
  ip->check = ~lk_fold(sum);
}

// Rule 5.
static __always_inline void lk_count(const struct lk_match *m) {
  __u32 stream = m->flow->stream;
  struct lk_stream_stats *s = bpf_map_lookup_elem(&lk_stats, &stream);
  if (!s) return;
  const __u64 now = m->now;
  s->packets += 1;
  s->bytes += m->payload_bytes;
  s->last_ns = now;
  s->last_seq = m->seq;
  if (!s->started) {
    s->started = 1;
    s->max_seq_ext = m->seq;
    s->base_seq_ext = m->seq;
  } else {
    const __u16 ahead = m->seq - (__u16)s->max_seq_ext;
    if (ahead != 0 && ahead < 0x8000) {
      __u32 ext = (s->max_seq_ext & 0xffff0000u) | m->seq;
      if (m->seq < (__u16)s->max_seq_ext) ext += 0x10000;  // wrapped
      s->max_seq_ext = ext;
    }
  }
  const __u32 rate = m->flow->clock_rate;
  if (rate) {
    // Arrival in RTP clock units; microseconds first keeps the product far from overflow.
    const __u32 arrival = (__u32)((now / 1000) * rate / 1000000);
    const __u32 transit = arrival - m->rtp_ts;
    if (s->packets > 1) {
      __s32 d = (__s32)(transit - s->transit);
      if (d < 0) d = -d;
      s->jitter16 += d - ((s->jitter16 + 8) >> 4);
    }
    s->transit = transit;
  }
}

SEC("xdp")
int lk_xdp_relay(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct lk_match m;
  if (!lk_match(data, data_end, bpf_xdp_get_buff_len(ctx), &m)) return XDP_PASS;
  // Only frames addressed to this interface (see lk_ifmac).
  __u32 ingress = ctx->ingress_ifindex;
  const struct lk_ifmac *own = bpf_map_lookup_elem(&lk_ifmacs, &ingress);
  if (own) {
    const __u8 *to = ((const struct ethhdr *)data)->h_dest;
    if ((to[0] ^ own->mac[0]) | (to[1] ^ own->mac[1]) | (to[2] ^ own->mac[2]) | (to[3] ^ own->mac[3]) |
        (to[4] ^ own->mac[4]) | (to[5] ^ own->mac[5]))
      return XDP_PASS;
  }
  const struct lk_flow_value *flow = m.flow;
  // No next hop yet: the socket path forwards (and the kernel's ARP resolves it) meanwhile.
  if (!(flow->flags & LK_FLOW_KEEP_L2) && !(flow->dst_mac[0] | flow->dst_mac[1] | flow->dst_mac[2] | flow->dst_mac[3] | flow->dst_mac[4] |
        flow->dst_mac[5])) {
    return XDP_PASS;
  }
  struct udphdr *udp = m.udp;
  if (udp->check) {
    __u64 sum = (__u16)~udp->check;
    sum = lk_csum_replace32(sum, m.ip->saddr, flow->new_src_ip);
    sum = lk_csum_replace32(sum, m.ip->daddr, flow->new_dst_ip);
    sum = lk_csum_replace16(sum, udp->source, flow->new_src_port);
    sum = lk_csum_replace16(sum, udp->dest, flow->new_dst_port);
    __u16 check = ~lk_fold(sum);
    udp->check = check ? check : 0xffff;
  }
  udp->source = flow->new_src_port;
  udp->dest = flow->new_dst_port;
  lk_rewrite_ip(m.ip, flow);
  if (!(flow->flags & LK_FLOW_KEEP_L2)) {
    struct ethhdr *eth = data;
    __builtin_memcpy(eth->h_dest, flow->dst_mac, ETH_ALEN);
    __builtin_memcpy(eth->h_source, flow->src_mac, ETH_ALEN);
  }
  lk_count(&m);
  if (flow->out_ifindex == 0 || flow->out_ifindex == ctx->ingress_ifindex) return XDP_TX;
  return bpf_redirect(flow->out_ifindex, 0);
}

SEC("tc")
int lk_tc_relay(struct __sk_buff *skb) {
  // The headers must be in the linear part for direct access (they are, for a datagram this small,
  // unless a driver split it).
  if (bpf_skb_pull_data(skb, sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr) + RTP_HEADER_BYTES))
    return TC_ACT_UNSPEC;
  // Only frames addressed to this host: tc also sees frames for other MACs (promiscuous mode).
  if (skb->pkt_type != PACKET_HOST) return TC_ACT_UNSPEC;
  void *data = (void *)(long)skb->data;
  void *data_end = (void *)(long)skb->data_end;
  struct lk_match m;
  if (!lk_match(data, data_end, skb->len, &m)) return TC_ACT_UNSPEC;
  const struct lk_flow_value *flow = m.flow;
  // Copies: the helpers below invalidate packet pointers and `flow` may change under us.
  const __be32 old_src = m.ip->saddr, old_dst = m.ip->daddr;
  const __be16 old_sport = m.udp->source, old_dport = m.udp->dest;
  const __be32 new_src = flow->new_src_ip, new_dst = flow->new_dst_ip;
  const __be16 new_sport = flow->new_src_port, new_dport = flow->new_dst_port;
  const __u32 out_ifindex = flow->out_ifindex ? flow->out_ifindex : skb->ifindex;
  const int keep_l2 = flow->flags & LK_FLOW_KEEP_L2;
  __u8 dst_mac[ETH_ALEN], src_mac[ETH_ALEN];
  __builtin_memcpy(dst_mac, flow->dst_mac, ETH_ALEN);
  __builtin_memcpy(src_mac, flow->src_mac, ETH_ALEN);
  lk_count(&m);

  const __u32 ip_off = sizeof(struct ethhdr);
  const __u32 udp_csum_off = ip_off + sizeof(struct iphdr) + offsetof(struct udphdr, check);
  // The kernel's helpers handle checksums that are complete, partial (offloaded) or absent.
  const __u64 csum_flags = BPF_F_MARK_MANGLED_0;
  bpf_l4_csum_replace(skb, udp_csum_off, old_src, new_src, csum_flags | BPF_F_PSEUDO_HDR | sizeof(new_src));
  bpf_l4_csum_replace(skb, udp_csum_off, old_dst, new_dst, csum_flags | BPF_F_PSEUDO_HDR | sizeof(new_dst));
  bpf_l4_csum_replace(skb, udp_csum_off, old_sport, new_sport, csum_flags | sizeof(new_sport));
  bpf_l4_csum_replace(skb, udp_csum_off, old_dport, new_dport, csum_flags | sizeof(new_dport));
  bpf_skb_store_bytes(skb, ip_off + sizeof(struct iphdr) + offsetof(struct udphdr, source), &new_sport,
                      sizeof(new_sport), 0);
  bpf_skb_store_bytes(skb, ip_off + sizeof(struct iphdr) + offsetof(struct udphdr, dest), &new_dport,
                      sizeof(new_dport), 0);

  data = (void *)(long)skb->data;
  data_end = (void *)(long)skb->data_end;
  struct iphdr *ip = data + ip_off;
  if ((void *)(ip + 1) > data_end) return TC_ACT_SHOT;  // cannot happen: pulled above
  struct lk_flow_value rewrite = {.new_src_ip = new_src, .new_dst_ip = new_dst};
  lk_rewrite_ip(ip, &rewrite);

  if (keep_l2) return bpf_redirect(out_ifindex, 0);
  if (!(dst_mac[0] | dst_mac[1] | dst_mac[2] | dst_mac[3] | dst_mac[4] | dst_mac[5])) {
    // No next hop given: the kernel resolves it (route and neighbour) for the new destination.
    return bpf_redirect_neigh(out_ifindex, 0, 0, 0);
  }
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end) return TC_ACT_SHOT;
  __builtin_memcpy(eth->h_dest, dst_mac, ETH_ALEN);
  __builtin_memcpy(eth->h_source, src_mac, ETH_ALEN);
  return bpf_redirect(out_ifindex, 0);
}
