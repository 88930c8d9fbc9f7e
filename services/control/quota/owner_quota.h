#pragma once
// How many records each PBX identity holds, against a per-identity limit, so that one PBX (or one
// stolen PBX certificate) cannot fill control with bindings or sessions that crowd out the others.
// Only `pbx/...` owners count: operators and plaintext callers are bounded by the global limits.
#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace latchkey::control {

class OwnerQuota {
 public:
  // `what` names the records in errors ("bindings"); `quota_field` the config field that sets `limit`.
  OwnerQuota(std::string what, std::string quota_field, uint64_t limit)
      : what_(std::move(what)), quota_field_(std::move(quota_field)), limit_(limit) {}

  // Takes one for `owner`; RESOURCE_EXHAUSTED naming the quota when it holds `limit` already.
  absl::Status Acquire(const std::string& owner);
  // Gives one back (a record removed); never below zero.
  void Release(const std::string& owner);
  uint64_t held(const std::string& owner) const;

  static bool Counted(const std::string& owner) { return owner.rfind("pbx/", 0) == 0; }

 private:
  const std::string what_;
  const std::string quota_field_;
  const uint64_t limit_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, uint64_t> held_ ABSL_GUARDED_BY(mu_);
};

}  // namespace latchkey::control
