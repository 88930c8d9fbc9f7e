#pragma once
// Which flow entry, if any, the kernel should hold for media arriving on one leg of a stream and
// leaving through the other: a pure decision (no I/O), made by the packet thread after every latch
// event and signalling change and applied by FlowSync. Rules:
// 1. Only latched to latched: the arriving leg's lock is the key's source, the other leg's lock the
//    destination. Before both legs latched, media goes through the latch (probation, consent, rate).
// 2. IPv4 only, on a concretely bound relay address (a wildcard bind does not say which local
//    address the peer sends to), with a known SSRC (the lock's).
// 3. Not on legs chained to another relay: their loop checks stay in user space.
// 4. The entry names the egress: the interface of the out leg's address, the next hop's MAC when
//    known (XDP hands packets back until it is), and "keep the MACs" on loopback.
#include <array>
#include <cstdint>
#include <optional>

#include "common/net/ip_address.h"
#include "common/net/socket_address.h"
#include "media-relay/fastpath/fast_path_abi.h"

namespace latchkey::relay {

struct FlowLeg {
  std::optional<net::SocketAddress> lock;  // the latched source
  uint32_t ssrc = 0;                       // the lock's SSRC
  net::IpAddress bind_ip;                  // the relay socket's address
  uint16_t rtp_port = 0;
  bool relay_chain = false;
};

struct FlowEgress {
  int ifindex = 0;
  bool loopback = false;
  std::array<uint8_t, 6> src_mac{};
  std::optional<std::array<uint8_t, 6>> next_hop_mac;
};

struct FlowEntry {
  lk_flow_key key{};
  lk_flow_value value{};
  friend bool operator==(const FlowEntry& a, const FlowEntry& b);
};

// The IPv4 address (network order) of `ip` if it is IPv4 or v4-mapped IPv6.
std::optional<uint32_t> Ipv4Of(const net::IpAddress& ip);

std::optional<FlowEntry> PlanFlow(const FlowLeg& in, const FlowLeg& out, const FlowEgress& egress, uint32_t stream,
                                  uint32_t clock_rate);

}  // namespace latchkey::relay
