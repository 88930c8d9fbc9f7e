#include "services/control/sessions/session_writer.h"

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/time/proto_time.h"

namespace latchkey::control {

SessionEvent SessionWriter::EventOf(v1::SessionEventType type) const {
  SessionEvent event;
  event.set_type(type);
  *event.mutable_time() = ToProto(clock_());
  return event;
}

absl::StatusOr<v1::Session> SessionWriter::Write(const v1::Session& session, uint64_t max_live_per_owner,
                                                 uint64_t min_version, std::optional<SessionEvent> event) {
  SessionWrite write;
  write.expected_version = session.version();
  write.expires_at = ExpiryOf(session, timeouts_);
  write.max_live_per_owner = max_live_per_owner;
  write.min_version = min_version;
  const bool logs = event.has_value();
  write.event = std::move(event);
  auto written = store_->Write(session, write);
  if (written.ok() && logs && logged_) logged_();
  return written;
}

absl::StatusOr<v1::Session> SessionWriter::Change(const std::string& session_id,
                                                  const std::function<absl::Status(v1::Session&)>& change,
                                                  const SessionEvent* event) {
  absl::Status last;
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    auto session = store_->Get(session_id);
    if (!session.ok()) return session.status();
    if (absl::Status s = change(*session); !s.ok()) {
      // The relay already has a newer version of this session: read it again, as for the store.
      if (absl::IsAborted(s)) {
        last = s;
        continue;
      }
      return s;
    }
    auto written = Write(*session, UINT64_MAX, 0, event ? std::optional<SessionEvent>(*event) : std::nullopt);
    if (!absl::IsAborted(written.status())) return written;
    last = written.status();
  }
  return last;
}

absl::StatusOr<v1::Session> SessionWriter::End(v1::Session session, v1::SessionEventType reason, bool tell_worker,
                                               bool* ended_here) {
  if (ended_here) *ended_here = false;
  if (session.state() == v1::SESSION_STATE_ENDED) return session;
  v1::DeleteRelaySessionResponse final_figures;
  const bool confirmed =
      tell_worker && relay_->Delete(session.worker_id(), session.session_id(), reason,
                                    kPortsPerStream * session.caller().relay_size(), &final_figures);
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    if (session.state() == v1::SESSION_STATE_ENDED) return session;  // another writer ended it
    v1::Session ended = session;
    if (confirmed) {
      *ended.mutable_caller()->mutable_stats() = final_figures.caller();
      *ended.mutable_callee()->mutable_stats() = final_figures.callee();
    }
    ended.set_state(v1::SESSION_STATE_ENDED);
    ended.set_end_reason(reason);
    *ended.mutable_updated_at() = ToProto(clock_());
    auto written = Write(ended, UINT64_MAX, 0, EventOf(reason));
    if (written.ok()) {
      metrics_->sessions_active->Decrement();
      if (metrics_->session_ends[reason]) metrics_->session_ends[reason]->Increment();
      log::LogInfo("session ended")
          .Kv("session_id", written->session_id())
          .Kv("call_id", written->call_id())
          .Kv("reason", v1::SessionEventType_Name(reason));
      if (ended_here) *ended_here = true;
      return written;
    }
    if (!absl::IsAborted(written.status())) return written.status();
    auto newer = store_->Get(session.session_id());
    if (!newer.ok()) return newer.status();
    session = *std::move(newer);
  }
  return absl::AbortedError(absl::StrCat("session_id: session ", session.session_id(), " kept changing while ending it"));
}

void SessionWriter::Publish(v1::SessionEventType type, const v1::Session& session, SessionEvent event) {
  event.set_type(type);
  *event.mutable_session() = session;
  if (!event.has_time()) *event.mutable_time() = ToProto(clock_());
  if (absl::Status s = store_->AppendEvent(event); !s.ok()) {
    log::LogWarning("session event not logged").Kv("session_id", session.session_id()).Kv("error", s.ToString());
    return;
  }
  if (logged_) logged_();
}

}  // namespace latchkey::control
