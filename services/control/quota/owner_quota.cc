#include "services/control/quota/owner_quota.h"

#include "absl/strings/str_cat.h"

namespace latchkey::control {

absl::Status OwnerQuota::Acquire(const std::string& owner) {
  if (!Counted(owner)) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  uint64_t& held = held_[owner];
  if (held >= limit_) {
    return absl::ResourceExhaustedError(absl::StrCat(quota_field_, ": ", owner, " holds ", held, " ", what_,
                                                     ", its quota"));
  }
  ++held;
  return absl::OkStatus();
}

void OwnerQuota::Release(const std::string& owner) {
  if (!Counted(owner)) return;
  absl::MutexLock lock(&mu_);
  auto it = held_.find(owner);
  if (it == held_.end()) return;
  if (--it->second == 0) held_.erase(it);
}

uint64_t OwnerQuota::held(const std::string& owner) const {
  absl::MutexLock lock(&mu_);
  auto it = held_.find(owner);
  return it == held_.end() ? 0 : it->second;
}

}  // namespace latchkey::control
