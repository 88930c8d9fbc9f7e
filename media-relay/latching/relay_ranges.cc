#include "media-relay/latching/relay_ranges.h"

namespace latchkey::relay {

RelayRanges::RelayRanges(std::vector<Range> ranges) : ranges_(std::move(ranges)) {
  for (Range& range : ranges_) range.ip = range.ip.Unmapped();
}

bool RelayRanges::Contains(const net::SocketAddress& source) const {
  const net::IpAddress ip = source.ip.Unmapped();
  for (const Range& range : ranges_) {
    if (source.port >= range.port_min && source.port <= range.port_max && range.ip == ip) return true;
  }
  return false;
}

}  // namespace latchkey::relay
