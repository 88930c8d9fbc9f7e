#pragma once
// Which control replica leads: the one holding the store's lease (store/lease.h). The leader pushes
// keepalive assignments and runs the sweepers; every replica serves the API. Renew is called on a
// cadence well inside the lease's time to live; a replica that cannot renew (the store unreachable,
// or paused past the TTL) stops leading at its next Renew, and its fencing token is outdated as soon
// as another replica takes the lease, so workers refuse what it still sends.
#include <atomic>
#include <cstdint>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "services/control/metrics/control_metrics.h"
#include "services/control/store/lease.h"

namespace latchkey::control {

class Leadership {
 public:
  // `holder` names this replica (unique: host and a random part).
  Leadership(Lease* lease, std::string holder, absl::Duration ttl, ControlMetrics* metrics);

  // Takes or renews the lease; returns the token it is held under, 0 when not leading.
  uint64_t Renew(absl::Time now);
  // Gives the lease up (shutdown) so another replica takes over at once.
  void Release();
  // As of the last Renew, and only while that renewal's lease is surely still ours: a replica whose
  // renewals stall (a slow sweep, a paused process) stops leading before the lease can pass on.
  uint64_t token() const {
    if (absl::Now() >= absl::FromUnixNanos(valid_until_.load(std::memory_order_acquire))) return 0;
    return token_.load(std::memory_order_acquire);
  }
  bool leading() const { return token() != 0; }
  const std::string& holder() const { return holder_; }

 private:
  Lease* lease_;
  const std::string holder_;
  const absl::Duration ttl_;
  ControlMetrics* metrics_;
  std::atomic<uint64_t> token_{0};
  std::atomic<int64_t> valid_until_{0};  // unix ns
};

// A unique holder name for this process: host name and a random suffix.
std::string NewHolderName();

}  // namespace latchkey::control
