#include "services/control/leader/leadership.h"

#include <unistd.h>

#include "absl/random/random.h"
#include "absl/strings/str_format.h"
#include "common/log/log.h"

namespace latchkey::control {

Leadership::Leadership(Lease* lease, std::string holder, absl::Duration ttl, ControlMetrics* metrics)
    : lease_(lease), holder_(std::move(holder)), ttl_(ttl), metrics_(metrics) {}

uint64_t Leadership::Renew(absl::Time now) {
  // The lease runs from before the request: a quarter of it is kept back for clocks and delays.
  const absl::Time asked = absl::Now();
  auto token = lease_->Acquire(holder_, now, ttl_);
  const uint64_t held = token.ok() ? *token : 0;
  valid_until_.store(held != 0 ? absl::ToUnixNanos(asked + ttl_ * 3 / 4) : 0, std::memory_order_release);
  const uint64_t before = token_.exchange(held, std::memory_order_acq_rel);
  if (before != held) {
    metrics_->leadership_changes->Increment();
    metrics_->leader->Set(held != 0 ? 1 : 0);
    if (held != 0) {
      log::LogInfo("leading").Kv("holder", holder_).Kv("fencing_token", held);
    } else {
      log::LogWarning("no longer leading")
          .Kv("holder", holder_)
          .Kv("why", token.ok() ? "another replica holds the lease" : std::string(token.status().message()));
    }
  }
  return held;
}

void Leadership::Release() {
  valid_until_.store(0, std::memory_order_release);
  if (token_.exchange(0) == 0) return;
  lease_->Release(holder_).IgnoreError();
  metrics_->leader->Set(0);
  metrics_->leadership_changes->Increment();
}

std::string NewHolderName() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return absl::StrFormat("%s/%016x", host, absl::Uniform<uint64_t>(absl::BitGen()));
}

}  // namespace latchkey::control
