#pragma once
// Change logs: each store appends an entry for every change in the same atomic step as the change,
// so that every control replica can tail what any replica wrote (Watch streams, the keepalive
// leader) in one order, and a reader can resume from a position. A position is opaque to clients
// (it is the Watch resume token): a Redis stream id, or an in-process counter.
//
// Rules for every log: positions grow; Read returns the entries after `after`, oldest first; a log
// keeps a bounded number of entries, and a reader whose position is older than that, or is not a
// position of this log at all (another deployment, a wiped store, a restarted embedded store), gets
// OUT_OF_RANGE: it has missed something and must list again (the Kubernetes "410 Gone").
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/validation.h"
#include "latchkey/v1/nat_control.pb.h"

namespace latchkey::control {

template <typename T>
struct Logged {
  std::string position;
  T value;
};

template <typename T>
struct LogPage {
  std::vector<Logged<T>> entries;
  // Where to read on from: the last entry's position, or `after` when there was none.
  std::string next;
};

// A binding change: the event type, the binding after it (or as it was when removed) and when.
struct BindingLogEntry {
  v1::BindingEventType type = v1::BINDING_EVENT_TYPE_UNSPECIFIED;
  v1::Binding binding;
  absl::Time time;
};

inline absl::Status LogPositionGone(absl::string_view field, absl::string_view position) {
  return absl::OutOfRangeError(absl::StrCat(field, ": \"", Excerpt(position),
                                            "\" is older than the change log keeps, or not one of its positions; "
                                            "list again and watch from the listing's resume_token"));
}

// Entries a log keeps by default (ControlConfig.event_log_length).
inline constexpr uint64_t kDefaultLogLength = 50'000;

}  // namespace latchkey::control
