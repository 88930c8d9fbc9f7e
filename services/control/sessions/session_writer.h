#pragma once
// Writes sessions the one way every part of the session core does: a versioned write with the
// session's next deadline, re-applied to the newer record when another writer (another RPC, another
// replica, the sweeper) got there first; ending a session (its worker told, the record kept for its
// retention, counters and one log line); and the watchers' events.
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "latchkey/v1/nat_control.pb.h"
#include "services/control/metrics/control_metrics.h"
#include "services/control/sessions/relay_sessions.h"
#include "services/control/sessions/session_timeouts.h"
#include "services/control/store/session_store.h"

namespace latchkey::control {

using SessionEvent = v1::WatchSessionsResponse;

// Attempts at a read-change-write before giving up with ABORTED (each loses only to a newer write).
inline constexpr int kMaxWriteAttempts = 4;

class SessionWriter {
 public:
  // `logged` runs after every change that logged an event (the event feed tails at once).
  SessionWriter(SessionStore* store, RelaySessions* relay, ControlMetrics* metrics, SessionTimeouts timeouts,
                std::function<absl::Time()> clock, std::function<void()> logged = nullptr)
      : store_(store),
        relay_(relay),
        metrics_(metrics),
        timeouts_(timeouts),
        clock_(std::move(clock)),
        logged_(std::move(logged)) {}

  // An event of `type` at the writer's clock: what Write and Change log with the session as written.
  SessionEvent EventOf(v1::SessionEventType type) const;

  // Writes `session` if the store still holds the version it carries (0: a new session); returns it
  // as stored. ABORTED when another write came first. `event`, if any, is logged in the same step.
  absl::StatusOr<v1::Session> Write(const v1::Session& session, uint64_t max_live_per_owner = UINT64_MAX,
                                    uint64_t min_version = 0, std::optional<SessionEvent> event = std::nullopt);

  // Reads session `session_id`, applies `change` and writes the result; on ABORTED (from the store,
  // or from `change`: a relay that has a newer version), again from the newer record. `change` may
  // call relays; any other error it returns stops the loop. `event`, if given, is logged with the
  // write (`change` may still set its type).
  absl::StatusOr<v1::Session> Change(const std::string& session_id,
                                     const std::function<absl::Status(v1::Session&)>& change,
                                     const SessionEvent* event = nullptr);

  // Ends a live session: tells its worker (unless lost), keeps the record for its retention, counts
  // and logs it and tells watchers. Returns the ended session; one that another writer ended first is
  // returned as that writer left it, without a second event, and `*ended_here` (if given) says which.
  // Racing enders may both tell the worker (it answers the second NOT_FOUND).
  absl::StatusOr<v1::Session> End(v1::Session session, v1::SessionEventType reason, bool tell_worker,
                                  bool* ended_here = nullptr);

  // Logs an event that changes no record (a latch contest). `event` may carry the type-specific
  // fields (side, source) and the time; type and session are set here.
  void Publish(v1::SessionEventType type, const v1::Session& session, SessionEvent event = {});

  absl::Time Now() const { return clock_(); }
  const SessionTimeouts& timeouts() const { return timeouts_; }

 private:
  SessionStore* store_;
  RelaySessions* relay_;
  ControlMetrics* metrics_;
  const SessionTimeouts timeouts_;
  std::function<absl::Time()> clock_;
  std::function<void()> logged_;
};

}  // namespace latchkey::control
