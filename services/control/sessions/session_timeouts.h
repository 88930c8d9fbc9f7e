#pragma once
// When the sweeper looks at a session again: offer, idle and final timeouts while it lives, the
// retention once it has ended. Pure, so every replica computes the same deadline from the record.
#include "absl/time/time.h"
#include "latchkey/v1/nat_control.pb.h"

namespace latchkey::control {

struct SessionTimeouts {
  absl::Duration offer = absl::Minutes(10);
  absl::Duration idle = absl::Hours(1);
  absl::Duration final = absl::Hours(12);
  absl::Duration ended_retention = absl::Seconds(30);
};

// created_at + the session's final timeout (its option, else the configured default).
absl::Time FinalDeadlineOf(const v1::Session& session, const SessionTimeouts& timeouts);
// The next moment the session needs attention (see above).
absl::Time ExpiryOf(const v1::Session& session, const SessionTimeouts& timeouts);

}  // namespace latchkey::control
