#pragma once
// What the relay's eBPF program (relay.bpf.c) and user space (fast_path.h) share: the maps' key and
// value layouts. Plain C, included by both; every field is fixed-size and the structs have no
// implicit padding (checked below), so the two compilers lay them out alike.
//
// One flow entry per latched leg direction: a datagram arriving with exactly `lk_flow_key` (the
// latched peer's address -> the relay's port) that is plain RTP v2 carrying `ssrc` leaves rewritten
// to `lk_flow_value`'s addresses (relay port -> the other leg's latched peer). Addresses and ports
// are in network byte order, as on the wire.
#include <linux/types.h>

#define LK_MAX_FLOWS 65536
#define LK_MAX_STREAMS 65536

struct lk_flow_key {
  __be32 src_ip;
  __be32 dst_ip;
  __be16 src_port;
  __be16 dst_port;
};

struct lk_flow_value {
  __be32 new_src_ip;
  __be32 new_dst_ip;
  __be16 new_src_port;
  __be16 new_dst_port;
  __u8 dst_mac[6];  // next hop (the peer on-link, else the gateway)
  __u8 src_mac[6];  // the egress interface's
  __u32 out_ifindex;  // egress interface; the arrival one means XDP_TX
  __be32 ssrc;        // only this stream's packets are forwarded
  __u32 stream;       // index of its counters in `lk_stats`
  __u32 clock_rate;   // RTP clock in Hz for the jitter (0: none kept)
  __u32 flags;        // LK_FLOW_*
};

// The egress interface has no link layer (loopback): the frame's MACs are left as they are.
#define LK_FLOW_KEEP_L2 1u

// Per stream and per CPU (one RX queue, hence mostly one CPU, carries a 5-tuple). The sequence
// fields follow RFC 3550 A.1 in a simplified form (no probation: the leg is latched already):
// `max_seq_ext` = wraps * 65536 + highest sequence; `base_seq_ext` the first one seen on this CPU.
// `jitter16` is A.8's estimator in 1/16 RTP timestamp units.
struct lk_stream_stats {
  __u64 packets;
  __u64 bytes;    // UDP payload bytes (RTP header, payload and padding)
  __u64 last_ns;  // bpf_ktime_get_ns() of the newest packet (CLOCK_MONOTONIC)
  __u32 max_seq_ext;
  __u32 base_seq_ext;
  __u32 last_seq;  // sequence of the newest packet, as it arrived
  __u32 transit;   // A.8: arrival minus RTP timestamp of the previous packet, in clock units
  __u32 jitter16;
  __u32 started;   // 0 until the first packet on this CPU
};

// Slot 0 of `lk_control`. The program forwards only while bpf_ktime_get_ns() < alive_until_ns, which
// user space pushes forward every second: a tc filter left behind by a relay that was killed (tc
// attachments outlive their process; XDP links do not) stops forwarding on its own within seconds.
struct lk_control {
  __u64 alive_until_ns;
};

// `lk_ifmacs`: an attached interface's own MAC, by ifindex. XDP forwards only frames addressed to
// it (an interface in promiscuous mode also receives other hosts' frames; tc checks the packet type).
struct lk_ifmac {
  __u8 mac[6];
  __u16 unused;
};

#ifdef __cplusplus
static_assert(sizeof(struct lk_ifmac) == 8, "lk_ifmac");
static_assert(sizeof(struct lk_control) == 8, "lk_control");
static_assert(sizeof(struct lk_flow_key) == 12, "lk_flow_key has padding");
static_assert(sizeof(struct lk_flow_value) == 44, "lk_flow_value has padding");
static_assert(sizeof(struct lk_stream_stats) == 48, "lk_stream_stats has padding");
#endif
