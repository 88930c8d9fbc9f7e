#pragma once
// A named lease that at most one control replica holds at a time, with a fencing token: the token
// grows each time the lease changes hands, so a relay that has seen token N refuses orders carrying
// an older one (a replica that lost the lease while paused cannot undo its successor's work).
//
// Rules: Acquire takes a free or expired lease, or renews the caller's own, for `ttl`, and returns
// the token it holds it under; 0 while another holder's lease runs. A holder that renews keeps its
// token; one that lets the lease lapse and takes it again gets a new one. Release frees the caller's
// own lease at once (shutdown), and is a no-op for anyone else's.
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace latchkey::control {

class Lease {
 public:
  virtual ~Lease() = default;
  virtual absl::StatusOr<uint64_t> Acquire(const std::string& holder, absl::Time now, absl::Duration ttl) = 0;
  virtual absl::Status Release(const std::string& holder) = 0;
};

// Within one process (the embedded store, unit tests): the same rules on `now` as given.
class MemoryLease : public Lease {
 public:
  absl::StatusOr<uint64_t> Acquire(const std::string& holder, absl::Time now, absl::Duration ttl) override {
    absl::MutexLock lock(&mu_);
    if (!holder_.empty() && holder_ != holder && now < expires_) return 0;
    if (holder_ != holder || now >= expires_) ++token_;
    holder_ = holder;
    expires_ = now + ttl;
    return token_;
  }
  absl::Status Release(const std::string& holder) override {
    absl::MutexLock lock(&mu_);
    if (holder_ == holder) holder_.clear();
    return absl::OkStatus();
  }

 private:
  absl::Mutex mu_;
  std::string holder_ ABSL_GUARDED_BY(mu_);
  absl::Time expires_ ABSL_GUARDED_BY(mu_);
  uint64_t token_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace latchkey::control
