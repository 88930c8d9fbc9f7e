#pragma once
// Relay port pairs (RTP even, RTCP = RTP + 1), handed out in random order so an attacker cannot
// predict the next session's ports, and quarantined after release so late packets of an old call
// never reach a new one.
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace latchkey::relay {

class PortPool {
 public:
  // Validates the range: min even, min < max, at most 65535; INVALID_ARGUMENT names the field.
  static absl::StatusOr<PortPool> Create(uint32_t port_min, uint32_t port_max, absl::Duration quarantine);

  // An even RTP port whose RTP+1 is reserved too; RESOURCE_EXHAUSTED when none is free.
  absl::StatusOr<uint16_t> Allocate(absl::Time now);
  // Returns a pair (by its RTP port) to the pool after the quarantine.
  void Release(uint16_t rtp_port, absl::Time now);

  // Pairs usable right now (after moving expired quarantines back).
  uint32_t FreePairs(absl::Time now);
  uint32_t TotalPairs() const { return total_pairs_; }
  uint16_t first_port() const { return first_port_; }
  uint16_t last_port() const { return static_cast<uint16_t>(first_port_ + 2 * total_pairs_ - 1); }

 private:
  PortPool(uint16_t first, uint32_t pairs, absl::Duration quarantine);
  void Unquarantine(absl::Time now);

  uint16_t first_port_;
  uint32_t total_pairs_;
  absl::Duration quarantine_;
  std::vector<uint16_t> free_;  // RTP ports; random pick + swap-remove
  std::deque<std::pair<absl::Time, uint16_t>> quarantined_;  // in release order
  absl::BitGen rng_;
};

}  // namespace latchkey::relay
