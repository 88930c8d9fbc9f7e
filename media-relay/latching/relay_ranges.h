#pragma once
// The media ports of Latchkey relays: this worker's (from start-up) and, as control reports them, its
// peers'. A packet from one of them comes from a relay, not from an endpoint. Our own ports are
// never a media source or destination (DropReason::kLoop): a leg latched onto one, or an SDP naming
// one, would close a loop inside this relay. A peer's port is refused unless control marked the leg
// as a relay chain and its SDP names that very address; otherwise latching onto it could close a loop
// between relays (relay A latched onto relay B's port for a leg B forwards back to A).
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
    bool own = false;  // this relay's
  };
  enum class Match : uint8_t { kNone, kOwn, kPeer };

  explicit RelayRanges(std::vector<Range> ranges);

  Match Find(const net::SocketAddress& source) const;
  size_t size() const { return ranges_.size(); }

 private:
  std::vector<Range> ranges_;  // IPs unmapped; a handful of relays, so a scan is cheapest
};

}  // namespace latchkey::relay
