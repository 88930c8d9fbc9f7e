#pragma once
// The media ports of Latchkey relays: this worker's and, as control reports them, its peers'. A
// packet from one of them comes from a relay, not from an endpoint. A leg may take media from a relay
// only when its SDP names that very address (a call chained through two relays, signalled); any
// other relay source is refused (DropReason::kLoop) before it can latch, which is what would close a
// loop: relay A latched onto relay B's port for a leg B forwards back to A.
#include <cstdint>
#include <vector>

#include "common/net/ip_address.h"
#include "common/net/socket_address.h"

namespace latchkey::relay {

class RelayRanges {
 public:
  struct Range {
    net::IpAddress ip;
    uint16_t port_min = 0;
    uint16_t port_max = 0;
  };
  explicit RelayRanges(std::vector<Range> ranges);

  bool Contains(const net::SocketAddress& source) const;
  size_t size() const { return ranges_.size(); }

 private:
  std::vector<Range> ranges_;  // IPs unmapped; a handful of relays, so a scan is cheapest
};

}  // namespace latchkey::relay
