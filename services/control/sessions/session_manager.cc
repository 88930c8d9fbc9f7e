#include "services/control/sessions/session_manager.h"

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/log/log.h"
#include "common/status_macros.h"
#include "common/time/proto_time.h"
#include "common/validation.h"
#include "services/control/quota/owner_limit.h"
#include "services/control/store/page_token.h"
#include "services/control/store/store_errors.h"

namespace latchkey::control {
namespace {

constexpr size_t kMaxPageSize = 1000;
constexpr size_t kDefaultPageSize = 100;

std::string NewSessionId() {
  static thread_local absl::BitGen rng;
  // 15 characters, like binding ids: inline in std::string wherever the relay and control keep it.
  return absl::StrFormat("s%014x", absl::Uniform<uint64_t>(rng) >> 8);
}

absl::Status Ended(const v1::Session& session) {
  return absl::FailedPreconditionError(absl::StrCat("session_id: session ", session.session_id(), " has ended"));
}

}  // namespace

SessionManager::SessionManager(SessionManagerOptions options, SessionStore* store, SessionWriter* writer,
                               RelaySessions* relay, ControlMetrics* metrics, const NatDetector* detector,
                               RelayAddressCheck is_relay_address)
    : options_(options),
      store_(store),
      writer_(writer),
      relay_(relay),
      metrics_(metrics),
      detector_(detector),
      is_relay_address_(std::move(is_relay_address)) {}

absl::StatusOr<v1::Session> SessionManager::LoadFor(const std::string& session_id, const grpcutil::Caller& caller) {
  auto session = store_->Get(session_id);
  if (session.ok() && !caller.owns(session->owner())) return NoSuchSession(session_id);
  return session;
}

absl::StatusOr<std::string> SessionManager::ApplySdp(v1::Session& session, v1::Side side, const std::string& sdp_text,
                                                    const v1::SocketAddress& signaling_source, bool* relay_told) {
  if (session.state() == v1::SESSION_STATE_ENDED) return Ended(session);
  v1::Session updated = session;
  ASSIGN_OR_RETURN(sdp::SessionDescription description,
                   DescribeLeg(updated, side, sdp_text, signaling_source, *detector_, is_relay_address_));
  // The worker records this as the version our write will make; a writer that loses the store race
  // re-reads and tells it again with a higher one.
  *relay_told = true;
  RETURN_IF_ERROR(relay_->Update(updated, static_cast<uint32_t>(description.media().size()), session.version() + 1));
  ASSIGN_OR_RETURN(std::string rewritten, RewriteForOtherSide(updated, side, description));
  *updated.mutable_updated_at() = ToProto(writer_->Now());
  // New media means the call goes on: a delayed release racing it (a BYE vs a re-INVITE, a serial
  // fork) is called off. The same SDP again (a retransmitted 200, a session refresh) does not revive.
  if (LegOf(updated, side)->SerializeAsString() != LegOf(session, side)->SerializeAsString()) {
    updated.clear_release_at();
  }
  session = std::move(updated);
  return rewritten;
}

absl::StatusOr<v1::Session> SessionManager::ChangeSdp(const std::string& session_id,
                                                      const std::function<absl::Status(v1::Session&, bool*)>& change,
                                                      const SessionEvent* event) {
  bool relay_told = false;
  auto changed = writer_->Change(session_id, [&](v1::Session& s) { return change(s, &relay_told); }, event);
  if (!changed.ok() && relay_told) {
    // Told the worker, then lost to other writers (or the session ended): put the worker back on
    // the stored state; a newer writer's update wins over this one at the worker by its version.
    if (auto stored = store_->Get(session_id); stored.ok() && stored->state() != v1::SESSION_STATE_ENDED) {
      const uint32_t streams =
          static_cast<uint32_t>(std::max(stored->caller().remote_size(), stored->callee().remote_size()));
      relay_->Update(*stored, streams, stored->version()).IgnoreError();
    }
  }
  return changed;
}

absl::StatusOr<v1::Session> SessionManager::NewSession(const v1::AllocateSessionRequest& request,
                                                       const std::string& owner) const {
  const absl::Time now = writer_->Now();
  v1::Session session;
  session.set_session_id(NewSessionId());
  session.set_owner(owner);
  session.set_call_id(request.call_id());
  session.set_branch(request.branch());
  session.set_state(v1::SESSION_STATE_OFFERED);
  *session.mutable_options() = request.options();
  v1::SessionOptions* opts = session.mutable_options();
  if (!opts->has_media_timeout()) *opts->mutable_media_timeout() = ToProto(options_.media_timeout);
  if (!opts->has_final_timeout()) *opts->mutable_final_timeout() = ToProto(options_.final_timeout);
  if (opts->ice() == v1::ICE_HANDLING_UNSPECIFIED) opts->set_ice(v1::ICE_HANDLING_REMOVE);
  session.mutable_caller()->set_tag(request.from_tag());
  *session.mutable_created_at() = ToProto(now);
  *session.mutable_updated_at() = ToProto(now);
  return session;
}

absl::StatusOr<v1::AllocateSessionResponse> SessionManager::Reoffer(const std::string& session_id,
                                                                    const v1::AllocateSessionRequest& request) {
  std::string sdp;
  const SessionEvent updated = writer_->EventOf(v1::SESSION_EVENT_TYPE_UPDATED);
  ASSIGN_OR_RETURN(v1::Session session, ChangeSdp(session_id, [&](v1::Session& s, bool* relay_told) -> absl::Status {
    ASSIGN_OR_RETURN(sdp, ApplySdp(s, v1::SIDE_CALLER, request.sdp(), request.signaling_source(), relay_told));
    return absl::OkStatus();
  }, &updated));
  v1::AllocateSessionResponse response;
  *response.mutable_session() = std::move(session);
  response.set_sdp(std::move(sdp));
  return response;
}

absl::StatusOr<v1::AllocateSessionResponse> SessionManager::Allocate(const v1::AllocateSessionRequest& request,
                                                                     const grpcutil::Caller& caller) {
  RETURN_IF_ERROR(CheckAllocateRequest(request));
  const std::string owner = caller.owner();
  // Twice at most: a create that lost the race for its Call-ID to another writer is a re-offer.
  for (int attempt = 0; attempt < 2; ++attempt) {
    // The same Call-ID and from-tag again is a re-offer of the same call: same worker, same ports.
    auto live = store_->FindLive(owner, request.call_id(), request.from_tag(), request.branch());
    if (live.ok()) return Reoffer(live->session_id(), request);
    if (!absl::IsNotFound(live.status())) return live.status();
    // Refused before any relay call; the store checks again, atomically, when the session is written.
    if (CountedOwner(owner)) {
      ASSIGN_OR_RETURN(uint64_t held, store_->LiveCount(owner));
      if (held >= options_.max_sessions_per_pbx) {
        return OwnerLimitReached("max_sessions_per_pbx", owner, held, "live sessions");
      }
    }

    ASSIGN_OR_RETURN(v1::Session session, NewSession(request, owner));
    ASSIGN_OR_RETURN(sdp::SessionDescription description,
                     DescribeLeg(session, v1::SIDE_CALLER, request.sdp(), request.signaling_source(), *detector_,
                                 is_relay_address_));
    const uint32_t streams = static_cast<uint32_t>(description.media().size());
    RETURN_IF_ERROR(relay_->Create(session, streams, CalleeFamily(session)));
    auto sdp = RewriteForOtherSide(session, v1::SIDE_CALLER, description);
    absl::StatusOr<v1::Session> stored =
        sdp.ok() ? writer_->Write(session, options_.max_sessions_per_pbx, 0,
                                  writer_->EventOf(v1::SESSION_EVENT_TYPE_ALLOCATED))
                 : sdp.status();
    if (!stored.ok()) {
      // Never announced: free the relay ports, but no event and no gauge change.
      v1::DeleteRelaySessionResponse ignored;
      relay_->Delete(session.worker_id(), session.session_id(), v1::SESSION_EVENT_TYPE_RELEASED,
                     streams * kPortsPerStream, &ignored);
      if (absl::IsAlreadyExists(stored.status()) && attempt == 0) continue;
      return stored.status();
    }
    metrics_->sessions_active->Increment();
    metrics_->session_allocations->Increment();
    log::LogInfo("session allocated")
        .Kv("session_id", stored->session_id())
        .Kv("call_id", stored->call_id())
        .Kv("worker_id", stored->worker_id())
        .Kv("streams", streams)
        .Kv("caller_nat", stored->caller().verdict().state() == v1::NAT_STATE_BEHIND_NAT);
    v1::AllocateSessionResponse response;
    *response.mutable_session() = *std::move(stored);
    response.set_sdp(*std::move(sdp));
    return response;
  }
  return absl::AbortedError(absl::StrCat("call_id: \"", Excerpt(request.call_id()), "\" kept changing; retry"));
}

absl::StatusOr<v1::AnswerSessionResponse> SessionManager::Answer(const v1::AnswerSessionRequest& request,
                                                                 const grpcutil::Caller& caller) {
  RETURN_IF_ERROR(CheckToken("session_id", request.session_id(), 64));
  RETURN_IF_ERROR(CheckToken("to_tag", request.to_tag(), 128));
  std::string sdp;
  SessionEvent answered = writer_->EventOf(v1::SESSION_EVENT_TYPE_UPDATED);
  ASSIGN_OR_RETURN(v1::Session session, ChangeSdp(request.session_id(), [&](v1::Session& s, bool* relay_told) -> absl::Status {
    if (!caller.owns(s.owner())) return NoSuchSession(request.session_id());
    if (s.state() == v1::SESSION_STATE_ENDED) return Ended(s);
    if (s.state() == v1::SESSION_STATE_ANSWERED && s.callee().tag() != request.to_tag() &&
        !request.replace_to_tag()) {
      // A forked call answered by another branch: the relay has one callee leg.
      return absl::FailedPreconditionError(
          absl::StrCat("to_tag: the session was answered by to-tag \"", Excerpt(s.callee().tag()), "\""));
    }
    const size_t offered = s.caller().remote_size();
    auto description = sdp::SessionDescription::Parse(request.sdp());
    if (description.ok() && description->media().size() != offered) {
      return absl::InvalidArgumentError(absl::StrCat("sdp: the answer has ", description->media().size(),
                                                     " m= lines, the offer had ", offered, " (RFC 3264)"));
    }
    const bool first_answer = s.state() == v1::SESSION_STATE_OFFERED;
    answered.set_type(first_answer ? v1::SESSION_EVENT_TYPE_ANSWERED : v1::SESSION_EVENT_TYPE_UPDATED);
    // Set before the worker is told, so the copy it keeps (and re-announces after a control restart)
    // says answered.
    s.mutable_callee()->set_tag(request.to_tag());
    s.set_state(v1::SESSION_STATE_ANSWERED);
    if (first_answer) *s.mutable_answered_at() = ToProto(writer_->Now());
    ASSIGN_OR_RETURN(sdp, ApplySdp(s, v1::SIDE_CALLEE, request.sdp(), request.signaling_source(), relay_told));
    return absl::OkStatus();
  }, &answered));
  v1::AnswerSessionResponse response;
  *response.mutable_session() = std::move(session);
  response.set_sdp(std::move(sdp));
  return response;
}

absl::StatusOr<v1::UpdateSessionResponse> SessionManager::Update(const v1::UpdateSessionRequest& request,
                                                                 const grpcutil::Caller& caller) {
  RETURN_IF_ERROR(CheckToken("session_id", request.session_id(), 64));
  RETURN_IF_ERROR(CheckEnum("side", request.side(), v1::Side_IsValid, false));
  std::string sdp;
  const SessionEvent updated = writer_->EventOf(v1::SESSION_EVENT_TYPE_UPDATED);
  ASSIGN_OR_RETURN(v1::Session session, ChangeSdp(request.session_id(), [&](v1::Session& s, bool* relay_told) -> absl::Status {
    if (!caller.owns(s.owner())) return NoSuchSession(request.session_id());
    if (request.side() == v1::SIDE_CALLEE && s.state() == v1::SESSION_STATE_OFFERED) {
      return absl::FailedPreconditionError("side: the callee has not answered yet; use AnswerSession");
    }
    ASSIGN_OR_RETURN(sdp, ApplySdp(s, request.side(), request.sdp(), request.signaling_source(), relay_told));
    return absl::OkStatus();
  }, &updated));
  v1::UpdateSessionResponse response;
  *response.mutable_session() = std::move(session);
  response.set_sdp(std::move(sdp));
  return response;
}

absl::StatusOr<v1::Session> SessionManager::Get(const std::string& session_id, const grpcutil::Caller& caller) {
  RETURN_IF_ERROR(CheckToken("session_id", session_id, 64));
  ASSIGN_OR_RETURN(v1::Session session, LoadFor(session_id, caller));
  if (session.state() == v1::SESSION_STATE_ENDED) return session;
  // Live figures come from the worker; without them the session is still worth returning.
  v1::GetRelaySessionResponse figures;
  if (relay_->Stats(session, &figures)) {
    *session.mutable_caller()->mutable_stats() = figures.caller();
    *session.mutable_callee()->mutable_stats() = figures.callee();
  }
  return session;
}

absl::StatusOr<v1::ListSessionsResponse> SessionManager::List(const v1::ListSessionsRequest& request,
                                                              const grpcutil::Caller& caller) {
  if (!request.worker_id().empty()) RETURN_IF_ERROR(CheckToken("worker_id", request.worker_id(), 128));
  if (request.page_size() > kMaxPageSize) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: ", request.page_size(), " is above ", kMaxPageSize));
  }
  const size_t page_size = request.page_size() == 0 ? kDefaultPageSize : request.page_size();
  ASSIGN_OR_RETURN(std::string cursor, DecodePageToken(request.page_token()));
  // A PBX reads its own sessions; others every session, or one worker's.
  SessionFilter filter;
  if (!caller.sees_all()) filter.owner = caller.owner();
  filter.worker_id = request.worker_id();
  v1::ListSessionsResponse response;
  // Read before the listing: a watch from here misses nothing the listing does not show.
  if (request.page_token().empty()) {
    ASSIGN_OR_RETURN(*response.mutable_resume_token(), store_->LogTail());
  }
  ASSIGN_OR_RETURN(SessionPage page, store_->List(filter, cursor, page_size));
  for (v1::Session& session : page.sessions) {
    if (!caller.owns(session.owner())) continue;  // never another's call, whatever an index says
    *response.add_sessions() = std::move(session);
  }
  if (!page.next_cursor.empty()) response.set_next_page_token(EncodePageToken(page.next_cursor));
  return response;
}

absl::StatusOr<v1::Session> SessionManager::Release(const std::string& session_id, const grpcutil::Caller& caller,
                                                    absl::Duration delay) {
  RETURN_IF_ERROR(CheckToken("session_id", session_id, 64));
  ASSIGN_OR_RETURN(v1::Session session, LoadFor(session_id, caller));
  if (session.state() == v1::SESSION_STATE_ENDED) return session;
  if (delay <= absl::ZeroDuration()) {
    return writer_->End(std::move(session), v1::SESSION_EVENT_TYPE_RELEASED, /*tell_worker=*/true);
  }
  // Media keeps flowing until then; the sweeper ends it (as RELEASED) unless new SDP calls it off.
  const absl::Time release_at = writer_->Now() + delay;
  const SessionEvent scheduled = writer_->EventOf(v1::SESSION_EVENT_TYPE_RELEASE_SCHEDULED);
  return writer_->Change(session_id, [&](v1::Session& s) -> absl::Status {
    if (s.state() == v1::SESSION_STATE_ENDED) return Ended(s);
    // The earlier deadline stands: a BYE retransmitted or seen from both sides does not extend it.
    if (!s.has_release_at() || FromProto(s.release_at()) > release_at) *s.mutable_release_at() = ToProto(release_at);
    return absl::OkStatus();
  }, &scheduled);
}

}  // namespace latchkey::control
