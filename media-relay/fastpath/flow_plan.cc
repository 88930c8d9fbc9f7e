#include "media-relay/fastpath/flow_plan.h"

#include <arpa/inet.h>

#include <cstring>

namespace latchkey::relay {

bool operator==(const FlowEntry& a, const FlowEntry& b) {
  return std::memcmp(&a.key, &b.key, sizeof(a.key)) == 0 && std::memcmp(&a.value, &b.value, sizeof(a.value)) == 0;
}

std::optional<uint32_t> Ipv4Of(const net::IpAddress& ip) {
  const net::IpAddress v4 = ip.Unmapped();
  if (!v4.is_v4()) return std::nullopt;
  uint32_t out;
  std::memcpy(&out, v4.bytes().data(), sizeof(out));
  return out;
}

std::optional<FlowEntry> PlanFlow(const FlowLeg& in, const FlowLeg& out, const FlowEgress& egress, uint32_t stream,
                                  uint32_t clock_rate) {
  if (!in.lock || !out.lock || in.ssrc == 0) return std::nullopt;                       // rules 1, 2
  if (in.relay_chain || out.relay_chain) return std::nullopt;                           // rule 3
  if (in.bind_ip.IsUnspecified() || out.bind_ip.IsUnspecified()) return std::nullopt;  // rule 2
  const auto peer = Ipv4Of(in.lock->ip), relay_in = Ipv4Of(in.bind_ip);
  const auto relay_out = Ipv4Of(out.bind_ip), destination = Ipv4Of(out.lock->ip);
  if (!peer || !relay_in || !relay_out || !destination) return std::nullopt;
  if (egress.ifindex <= 0) return std::nullopt;
  FlowEntry entry;
  entry.key = {*peer, *relay_in, htons(in.lock->port), htons(in.rtp_port)};
  lk_flow_value& v = entry.value;
  v.new_src_ip = *relay_out;
  v.new_dst_ip = *destination;
  v.new_src_port = htons(out.rtp_port);
  v.new_dst_port = htons(out.lock->port);
  v.out_ifindex = static_cast<uint32_t>(egress.ifindex);
  v.ssrc = htonl(in.ssrc);
  v.stream = stream;
  v.clock_rate = clock_rate;
  if (egress.loopback) {
    v.flags = LK_FLOW_KEEP_L2;
  } else {
    std::memcpy(v.src_mac, egress.src_mac.data(), 6);
    if (egress.next_hop_mac) std::memcpy(v.dst_mac, egress.next_hop_mac->data(), 6);  // rule 4
  }
  return entry;
}

}  // namespace latchkey::relay
