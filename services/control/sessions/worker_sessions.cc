#include "services/control/sessions/worker_sessions.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "common/time/proto_time.h"
#include "common/validation.h"
#include "services/control/quota/owner_limit.h"
#include "services/control/sessions/session_sdp.h"

namespace latchkey::control {
namespace {

constexpr size_t kPage = 1000;
// Versions a worker may announce: enough for any real call, and far from where 64-bit counters (or
// Redis's Lua numbers, exact to 2^53) would wrap or lose precision.
constexpr uint64_t kMaxAnnouncedVersion = uint64_t{1} << 40;

}  // namespace

absl::Status WorkerSessions::CheckAnnounced(const std::string& worker_id, uint32_t port_min, uint32_t port_max,
                                           const google::protobuf::RepeatedPtrField<v1::Session>& sessions) {
  for (int i = 0; i < sessions.size(); ++i) {
    const v1::Session& announced = sessions[i];
    if (announced.version() > kMaxAnnouncedVersion) {
      return absl::InvalidArgumentError(absl::StrCat("sessions[", i, "].version: ", announced.version(),
                                                     " is above ", kMaxAnnouncedVersion));
    }
    auto known = store_->Get(announced.session_id());
    if (known.ok() && known->worker_id() != worker_id && known->state() != v1::SESSION_STATE_ENDED) {
      return absl::PermissionDeniedError(absl::StrCat("sessions[", i, "]: session ", Excerpt(announced.session_id()),
                                                      " is carried by worker ", known->worker_id()));
    }
    for (const v1::Leg* leg : {&announced.caller(), &announced.callee()}) {
      for (const v1::RelayEndpoint& relay : leg->relay()) {
        const uint32_t port = relay.rtp().port();
        const uint32_t rtcp = relay.rtcp().port();  // 0: none
        const bool outside = port < port_min || port > port_max || (rtcp != 0 && (rtcp < port_min || rtcp > port_max));
        if (port_min != 0 && outside) {
          return absl::PermissionDeniedError(absl::StrCat("sessions[", i, "]: relay port ", port,
                                                          " is outside the worker's range ", port_min, "-", port_max));
        }
      }
    }
  }
  return absl::OkStatus();
}

std::vector<v1::Session> WorkerSessions::LiveSessionsOf(const std::string& worker_id) {
  std::vector<v1::Session> out;
  SessionFilter filter;
  filter.worker_id = worker_id;
  std::string cursor;
  do {
    auto page = store_->List(filter, cursor, kPage);
    if (!page.ok()) break;
    for (v1::Session& session : page->sessions) out.push_back(std::move(session));
    cursor = page->next_cursor;
  } while (!cursor.empty());
  return out;
}

bool WorkerSessions::Adopt(const std::string& worker_id, const v1::Session& announced) {
  auto known = store_->Get(announced.session_id());
  if (!known.ok() && !absl::IsNotFound(known.status())) return false;
  // Revived: a call control ended because this very worker went silent. Adopted: one control does
  // not know at all, which only a store that forgets on restart explains; a durable store knows
  // every call it placed, so there an unknown one is a worker's invention and refused.
  const bool revive = known.ok() && known->state() == v1::SESSION_STATE_ENDED &&
                      known->end_reason() == v1::SESSION_EVENT_TYPE_WORKER_LOST && known->worker_id() == worker_id;
  const bool adopt = !known.ok() && !durable_store_;
  if (!revive && !adopt) {
    if (!known.ok() || known->worker_id() != worker_id) {
      metrics_->sessions_adoption_refused->Increment();
      log::LogWarning("announced session refused")
          .Kv("worker_id", worker_id)
          .Kv("session_id", announced.session_id())
          .Kv("reason", known.ok() ? "placed on another worker" : "unknown to a durable store");
    }
    return false;
  }
  v1::Session session = announced;
  if (known.ok()) {
    // A call control still remembers keeps who owns it and what it is: a worker reports only what
    // it relays.
    session.set_owner(known->owner());
    session.set_call_id(known->call_id());
    session.mutable_caller()->set_tag(known->caller().tag());
    *session.mutable_created_at() = known->created_at();
    *session.mutable_options() = known->options();
    session.set_version(known->version());  // written as known + 1, or the relay's if higher
  } else {
    // Control restarted and has only the worker's word: never let it take over a live call's
    // Call-ID (a re-INVITE would follow it), nor claim a creation time in the future.
    session.set_version(0);  // created at the version the relay holds (below)
    if (FromProto(session.created_at()) > writer_->Now()) *session.mutable_created_at() = ToProto(writer_->Now());
  }
  session.set_worker_id(worker_id);
  session.set_state(session.has_answered_at() ? v1::SESSION_STATE_ANSWERED : v1::SESSION_STATE_OFFERED);
  session.clear_end_reason();
  *session.mutable_updated_at() = ToProto(writer_->Now());
  // Never refused for its owner's quota (the call exists on the relay already); the store refuses
  // it if another live session holds its Call-ID.
  auto stored = writer_->Write(session, UINT64_MAX, announced.version());
  if (!stored.ok()) {
    if (absl::IsAlreadyExists(stored.status())) {
      log::LogWarning("announced session refused: its call is live under another session")
          .Kv("worker_id", worker_id)
          .Kv("session_id", session.session_id())
          .Kv("error", stored.status().message());
      metrics_->sessions_adoption_refused->Increment();
    }
    return false;
  }
  if (CountedOwner(stored->owner())) {
    auto held = store_->LiveCount(stored->owner());
    if (held.ok() && *held > max_sessions_per_pbx_) {
      metrics_->sessions_adopted_over_quota->Increment();
      log::LogWarning("adopted session over its owner's quota").Kv("owner", stored->owner()).Kv("held", *held);
    }
  }
  metrics_->sessions_active->Increment();
  metrics_->sessions_adopted->Increment();
  return true;
}

void WorkerSessions::AdoptFromWorker(const std::string& worker_id,
                                     const google::protobuf::RepeatedPtrField<v1::Session>& sessions,
                                     absl::Time registered_at) {
  absl::flat_hash_set<std::string> announced;
  size_t adopted = 0;
  for (const v1::Session& session : sessions) {
    if (session.session_id().empty()) continue;
    announced.insert(session.session_id());
    if (Adopt(worker_id, session)) ++adopted;
  }
  // Sessions control placed on this worker that it no longer has are gone (the worker restarted).
  size_t orphaned = 0;
  for (v1::Session& session : LiveSessionsOf(worker_id)) {
    if (announced.contains(session.session_id())) continue;
    // Placed since the registration (the worker is placeable already): not an orphan.
    if (FromProto(session.created_at()) >= registered_at) continue;
    bool ended_here = false;
    writer_->End(std::move(session), v1::SESSION_EVENT_TYPE_WORKER_LOST, /*tell_worker=*/false, &ended_here).IgnoreError();
    if (ended_here) ++orphaned;
  }
  if (adopted || orphaned) {
    log::LogInfo("worker sessions reconciled").Kv("worker_id", worker_id).Kv("adopted", adopted).Kv("ended", orphaned);
  }
}

void WorkerSessions::HandleWorkerEvent(const std::string& worker_id, const v1::WorkerEvent& event) {
  auto session = store_->Get(event.session_id());
  if (!session.ok() || session->worker_id() != worker_id || session->state() == v1::SESSION_STATE_ENDED) {
    // The worker still holds a session control has ended or never knew (a create that timed out
    // here but succeeded there): its media timeout is the moment to free those ports.
    if (event.type() == v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT || event.type() == v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT) {
      v1::DeleteRelaySessionResponse ignored;
      relay_->Delete(worker_id, event.session_id(), event.type(), 0, &ignored);
    }
    return;
  }
  switch (event.type()) {
    case v1::SESSION_EVENT_TYPE_LATCHED:
    case v1::SESSION_EVENT_TYPE_RELATCHED: {
      SessionEvent latch = writer_->EventOf(event.type());
      latch.set_side(event.side());
      *latch.mutable_source() = event.source();
      // Moved or ended meanwhile: nothing to record.
      writer_->Change(event.session_id(), [&](v1::Session& s) -> absl::Status {
        if (s.worker_id() != worker_id || s.state() == v1::SESSION_STATE_ENDED) {
          return absl::FailedPreconditionError("moved or ended meanwhile");
        }
        v1::Leg* leg = LegOf(s, event.side());
        *leg->mutable_stats()->mutable_latched_source() = event.source();
        *leg->mutable_stats()->mutable_latched_at() = event.time();
        if (event.type() == v1::SESSION_EVENT_TYPE_RELATCHED) {
          leg->mutable_stats()->set_relatch_count(leg->stats().relatch_count() + 1);
        }
        *s.mutable_updated_at() = ToProto(writer_->Now());
        return absl::OkStatus();
      }, &latch).status().IgnoreError();
      break;
    }
    case v1::SESSION_EVENT_TYPE_LATCH_CONTESTED: {
      // Nothing changes in the session: watchers see the attack (or a misfit mode) as it happens.
      SessionEvent contest;
      *contest.mutable_time() = event.time();
      contest.set_side(event.side());
      *contest.mutable_source() = event.source();
      writer_->Publish(event.type(), *session, std::move(contest));
      log::LogInfo("latch contested")
          .Kv("session_id", session->session_id())
          .Kv("side", v1::Side_Name(event.side()))
          .Kv("source", absl::StrCat(event.source().ip(), ":", event.source().port()));
      break;
    }
    case v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT:
    case v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT:
      writer_->End(*std::move(session), event.type(), /*tell_worker=*/true).IgnoreError();
      break;
    default:
      break;
  }
}

void WorkerSessions::WorkerLost(const std::string& worker_id) {
  for (v1::Session& session : LiveSessionsOf(worker_id)) {
    // It registered again meanwhile and re-announced what it still carries: leave the rest to that.
    if (workers_->Get(worker_id).ok()) return;
    writer_->End(std::move(session), v1::SESSION_EVENT_TYPE_WORKER_LOST, /*tell_worker=*/false).IgnoreError();
  }
}

}  // namespace latchkey::control
