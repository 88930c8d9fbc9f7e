#include "services/control/sessions/session_timeouts.h"

#include <algorithm>

#include "common/time/proto_time.h"

namespace latchkey::control {

absl::Time FinalDeadlineOf(const v1::Session& session, const SessionTimeouts& timeouts) {
  const absl::Duration final_timeout =
      session.options().has_final_timeout() ? FromProto(session.options().final_timeout()) : timeouts.final;
  return FromProto(session.created_at()) + final_timeout;
}

absl::Time ReleaseDeadlineOf(const v1::Session& session) {
  return session.has_release_at() ? FromProto(session.release_at()) : absl::InfiniteFuture();
}

absl::Time ExpiryOf(const v1::Session& session, const SessionTimeouts& timeouts) {
  const absl::Time updated = FromProto(session.updated_at());
  switch (session.state()) {
    case v1::SESSION_STATE_OFFERED:
      return std::min({updated + timeouts.offer, FinalDeadlineOf(session, timeouts), ReleaseDeadlineOf(session)});
    case v1::SESSION_STATE_ANSWERED:
      return std::min({updated + timeouts.idle, FinalDeadlineOf(session, timeouts), ReleaseDeadlineOf(session)});
    default:
      return updated + timeouts.ended_retention;
  }
}

}  // namespace latchkey::control
