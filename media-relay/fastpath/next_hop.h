#pragma once
// Where the kernel would send an IPv4 datagram to `destination`: the route's output interface and
// gateway (RTM_GETROUTE), and the MAC of the gateway, or of the destination when it is on-link,
// from the neighbour table (RTM_GETNEIGH). Two netlink round trips, made once per flow entry, off
// the per-packet path. XDP needs the MAC; tc lets the kernel resolve it.
#include <array>
#include <cstdint>

#include "absl/status/statusor.h"

namespace latchkey::relay {

struct NextHop {
  int ifindex = 0;
  uint32_t via = 0;  // the gateway, or the destination itself (network order)
  std::array<uint8_t, 6> mac{};
};

// NOT_FOUND when there is no route or no usable neighbour entry yet (the kernel resolves it when
// the socket path first sends there); UNAVAILABLE when netlink fails. `source` (0: none) is the
// relay's address the datagram leaves from, for policy routing by source.
absl::StatusOr<NextHop> ResolveNextHop(uint32_t destination, uint32_t source = 0);

}  // namespace latchkey::relay
