#include "media-relay/latching/relay_ranges.h"

namespace latchkey::relay {

RelayRanges::RelayRanges(std::vector<Range> ranges) : ranges_(std::move(ranges)) {
  for (Range& range : ranges_) range.ip = range.ip.Unmapped();
}

RelayRanges::Match RelayRanges::Find(const net::SocketAddress& source) const {
  const net::IpAddress ip = source.ip.Unmapped();
  Match match = Match::kNone;
  for (const Range& range : ranges_) {
    if (source.port < range.port_min || source.port > range.port_max || range.ip != ip) continue;
    if (range.own) return Match::kOwn;  // ours wins over a peer's report of the same address
    match = Match::kPeer;
  }
  return match;
}

}  // namespace latchkey::relay
