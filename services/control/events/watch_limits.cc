#include "services/control/events/watch_limits.h"

#include "absl/strings/str_cat.h"

namespace latchkey::control {

absl::StatusOr<std::unique_ptr<WatchLimits::Slot>> WatchLimits::Acquire(const std::string& identity) {
  absl::MutexLock lock(&mu_);
  if (open_ >= total_) {
    return absl::ResourceExhaustedError(absl::StrCat("max_watches: ", open_, " watch streams are open, the limit"));
  }
  uint32_t& mine = by_identity_[identity];
  if (mine >= per_identity_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("max_watches_per_identity: ", identity, " has ", mine, " watch streams open, the limit"));
  }
  ++mine;
  ++open_;
  return std::unique_ptr<Slot>(new Slot(this, identity));
}

void WatchLimits::Release(const std::string& identity) {
  absl::MutexLock lock(&mu_);
  --open_;
  auto it = by_identity_.find(identity);
  if (it != by_identity_.end() && --it->second == 0) by_identity_.erase(it);
}

uint32_t WatchLimits::open() const {
  absl::MutexLock lock(&mu_);
  return open_;
}

}  // namespace latchkey::control
