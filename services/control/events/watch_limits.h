#pragma once
// How many Watch streams may be open, per caller identity and in all: each holds a server thread and
// a queue, so without a bound one client could open streams until control runs out of both.
#include <cstdint>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace latchkey::control {

class WatchLimits {
 public:
  WatchLimits(uint32_t per_identity, uint32_t total) : per_identity_(per_identity), total_(total) {}

  // Held for the life of one stream; gives its place back when destroyed.
  class Slot {
   public:
    ~Slot() { limits_->Release(identity_); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    friend class WatchLimits;
    Slot(WatchLimits* limits, std::string identity) : limits_(limits), identity_(std::move(identity)) {}
    WatchLimits* limits_;
    std::string identity_;
  };

  // RESOURCE_EXHAUSTED naming the limit (max_watches_per_identity or max_watches) when full.
  absl::StatusOr<std::unique_ptr<Slot>> Acquire(const std::string& identity);
  uint32_t open() const;

 private:
  void Release(const std::string& identity);

  const uint32_t per_identity_;
  const uint32_t total_;
  mutable absl::Mutex mu_;
  uint32_t open_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, uint32_t> by_identity_ ABSL_GUARDED_BY(mu_);
};

}  // namespace latchkey::control
