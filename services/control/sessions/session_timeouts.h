#pragma once
// When the sweeper looks at a session again: offer, idle and final timeouts and a delayed release
// while it lives, the retention once it has ended. Pure, so every replica computes the same deadline
// from the record.
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
// release_at (a delayed release), else InfiniteFuture.
absl::Time ReleaseDeadlineOf(const v1::Session& session);
// The next moment the session needs attention (see above, and a delayed release).
absl::Time ExpiryOf(const v1::Session& session, const SessionTimeouts& timeouts);

}  // namespace latchkey::control
