#pragma once
// Per-PBX limits: one PBX (or one stolen PBX certificate) must not fill control with bindings or
// sessions that crowd out the others. The stores count what each owner holds, atomically with the
// records; this says who is counted and how a refusal reads, so every store answers alike.
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace latchkey::control {

// Only `pbx/...` owners count: operators and plaintext callers are bounded by the global limits.
inline bool CountedOwner(absl::string_view owner) { return absl::StartsWith(owner, "pbx/"); }

// RESOURCE_EXHAUSTED naming the config field that sets the limit, e.g.
// "max_bindings_per_pbx: pbx/a holds 1000 bindings, its quota".
inline absl::Status OwnerLimitReached(absl::string_view limit_field, absl::string_view owner, uint64_t held,
                                      absl::string_view what) {
  return absl::ResourceExhaustedError(absl::StrCat(limit_field, ": ", owner, " holds ", held, " ", what, ", its quota"));
}

}  // namespace latchkey::control
