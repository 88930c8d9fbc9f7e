#include "services/control/sessions/session_manager.h"

#include "absl/cleanup/cleanup.h"
#include "absl/hash/hash.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/grpc/status.h"
#include "common/log/log.h"
#include "common/net/socket_address.h"
#include "common/status_macros.h"
#include "common/time/proto_time.h"
#include "common/validation.h"
#include "services/control/store/load_record.h"
#include "services/control/store/page_token.h"
#include "services/control/sdp/sdp_rewriter.h"

namespace latchkey::control {
namespace {

constexpr uint32_t kMaxStreams = 16;
constexpr uint32_t kPortsPerStream = 4;  // RTP + RTCP on each of the two legs
constexpr int kMaxPlacementAttempts = 3;
constexpr size_t kMaxPageSize = 1000;
constexpr size_t kDefaultPageSize = 100;
const std::string kSep(1, kKeySeparator);

// Owner first: the same Call-ID and from-tag from two PBXes are two calls.
std::string CallKey(absl::string_view owner, absl::string_view call_id, absl::string_view from_tag) {
  return absl::StrCat(owner, kSep, call_id, kSep, from_tag);
}

std::string NewSessionId() {
  static thread_local absl::BitGen rng;
  // 15 characters, like binding ids: inline in std::string wherever the relay and control keep it.
  return absl::StrFormat("s%014x", absl::Uniform<uint64_t>(rng) >> 8);
}

v1::MediaDirection DirectionToProto(sdp::Direction direction) {
  switch (direction) {
    case sdp::Direction::kSendRecv: return v1::MEDIA_DIRECTION_SENDRECV;
    case sdp::Direction::kSendOnly: return v1::MEDIA_DIRECTION_SENDONLY;
    case sdp::Direction::kRecvOnly: return v1::MEDIA_DIRECTION_RECVONLY;
    case sdp::Direction::kInactive: return v1::MEDIA_DIRECTION_INACTIVE;
    case sdp::Direction::kUnspecified: break;
  }
  return v1::MEDIA_DIRECTION_SENDRECV;
}

v1::Leg* LegOf(v1::Session& session, v1::Side side) {
  return side == v1::SIDE_CALLER ? session.mutable_caller() : session.mutable_callee();
}
const v1::Leg& OtherLeg(const v1::Session& session, v1::Side side) {
  return side == v1::SIDE_CALLER ? session.callee() : session.caller();
}

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

absl::Status WorkerError(const std::string& worker_id, const grpc::Status& status) {
  absl::Status s = grpcutil::FromGrpc(status);
  // The worker's own refusals (full, draining, bad request) keep their code; transport failures mean
  // the worker is unavailable.
  if (s.code() == absl::StatusCode::kDeadlineExceeded || s.code() == absl::StatusCode::kUnknown ||
      s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kCancelled) {
    return absl::UnavailableError(absl::StrCat("relay worker ", worker_id, ": ", s.message()));
  }
  return absl::Status(s.code(), absl::StrCat("relay worker ", worker_id, ": ", s.message()));
}

}  // namespace

SessionManager::SessionManager(SessionManagerOptions options, Store* store, const NatDetector* detector,
                               WorkerRegistry* workers, ControlMetrics* metrics, EventHub<SessionEvent>* events,
                               std::function<absl::Time()> clock)
    : options_(options),
      store_(store),
      detector_(detector),
      workers_(workers),
      metrics_(metrics),
      events_(events),
      clock_(std::move(clock)),
      quota_("live sessions", "max_sessions_per_pbx", options.max_sessions_per_pbx) {}

absl::Mutex& SessionManager::CallStripe(absl::string_view call_id) {
  return call_stripes_[absl::HashOf(call_id) % call_stripes_.size()];
}
absl::Mutex& SessionManager::SessionStripe(absl::string_view session_id) {
  return session_stripes_[absl::HashOf(session_id) % session_stripes_.size()];
}

absl::StatusOr<v1::Session> SessionManager::Load(const std::string& session_id) {
  return LoadRecord<v1::Session>(*store_, Table::kSessions, session_id, "session");
}

absl::StatusOr<v1::Session> SessionManager::LoadFor(const std::string& session_id, const grpcutil::Caller& caller) {
  auto session = Load(session_id);
  if (session.ok() && !caller.owns(session->owner())) {
    return absl::NotFoundError(absl::StrCat("session_id: no session \"", Excerpt(session_id), "\""));
  }
  return session;
}

absl::Time SessionManager::FinalDeadlineOf(const v1::Session& session) const {
  const absl::Duration final_timeout =
      session.options().has_final_timeout() ? FromProto(session.options().final_timeout()) : options_.final_timeout;
  return FromProto(session.created_at()) + final_timeout;
}

absl::Time SessionManager::ExpiryOf(const v1::Session& session) const {
  const absl::Time updated = FromProto(session.updated_at());
  switch (session.state()) {
    case v1::SESSION_STATE_OFFERED:
      return std::min(updated + options_.offer_timeout, FinalDeadlineOf(session));
    case v1::SESSION_STATE_ANSWERED:
      return std::min(updated + options_.idle_timeout, FinalDeadlineOf(session));
    default:
      return updated + options_.ended_retention;
  }
}

absl::Status SessionManager::Save(const v1::Session& session) {
  return store_->Put(Table::kSessions, session.session_id(), session.SerializeAsString(), ExpiryOf(session));
}

void SessionManager::Publish(v1::SessionEventType type, const v1::Session& session, SessionEvent event) {
  event.set_type(type);
  *event.mutable_session() = session;
  if (!event.has_time()) *event.mutable_time() = ToProto(clock_());
  events_->Publish(event);
}

absl::StatusOr<sdp::SessionDescription> SessionManager::DescribeLeg(v1::Session& session, v1::Side side,
                                                                    const std::string& sdp_text,
                                                                    const v1::SocketAddress& signaling_source) {
  ASSIGN_OR_RETURN(net::SocketAddress source, net::FromProto(signaling_source, "signaling_source"));
  if (sdp_text.empty()) return absl::InvalidArgumentError("sdp: required");
  auto description = sdp::SessionDescription::Parse(sdp_text);
  if (!description.ok()) return absl::InvalidArgumentError(absl::StrCat("sdp: ", description.status().message()));
  const size_t streams = description->media().size();
  if (streams == 0) return absl::InvalidArgumentError("sdp: has no m= line");
  if (streams > kMaxStreams) {
    return absl::InvalidArgumentError(absl::StrCat("sdp: ", streams, " m= lines, at most ", kMaxStreams, " are relayed"));
  }
  const size_t known = std::max(session.caller().relay_size(), session.callee().relay_size());
  if (streams < known) {
    return absl::InvalidArgumentError(absl::StrCat("sdp: ", streams, " m= lines but the session has ", known,
                                                   " (RFC 3264: streams are disabled with port 0, never removed)"));
  }

  NatInput input;
  input.source = source;
  for (const std::string& address : description->ConnectionAddresses()) {
    if (auto ip = net::IpAddress::Parse(address); ip.ok()) input.sdp_addresses.push_back(*ip);
  }
  v1::Leg* leg = LegOf(session, side);
  *leg->mutable_signaling_source() = signaling_source;
  *leg->mutable_verdict() = detector_->Evaluate(input);
  v1::LatchingMode mode = session.options().latching_mode();
  if (mode == v1::LATCHING_MODE_UNSPECIFIED) {
    // Behind NAT the SDP address is a guess; the signalling source IP is what the NAT exposes.
    mode = leg->verdict().state() == v1::NAT_STATE_BEHIND_NAT ? v1::LATCHING_MODE_SIGNALING_SOURCE
                                                              : v1::LATCHING_MODE_HEURISTIC;
  }
  leg->set_latching_mode(mode);
  leg->clear_remote();
  leg->set_relay_chain(false);
  for (size_t i = 0; i < streams; ++i) {
    const sdp::MediaDescription& media = description->media()[i];
    v1::RemoteMedia* remote = leg->add_remote();
    remote->set_media_index(static_cast<uint32_t>(i));
    remote->set_media_type(media.media_type);
    if (auto rtp = description->RtpAddress(i)) {
      remote->mutable_sdp_rtp()->set_ip(rtp->ip);
      remote->mutable_sdp_rtp()->set_port(rtp->port);
      // This side is another relay's port (a call through two PBXes on this fleet): the relays
      // accept a peer's range only on a leg marked so.
      if (workers_->IsRelayMediaAddress(rtp->ip, rtp->port)) leg->set_relay_chain(true);
    }
    if (auto rtcp = description->RtcpAddress(i)) {
      remote->mutable_sdp_rtcp()->set_ip(rtcp->ip);
      remote->mutable_sdp_rtcp()->set_port(rtcp->port);
    }
    remote->set_rtcp_mux(media.rtcp_mux);
    remote->set_direction(DirectionToProto(description->EffectiveDirection(i)));
    remote->set_ssrc(media.ssrc.value_or(0));
  }
  return description;
}

absl::StatusOr<std::string> SessionManager::RewriteForOtherSide(const v1::Session& session, v1::Side side,
                                                               const sdp::SessionDescription& description) {
  const v1::Leg& other = OtherLeg(session, side);
  sdp::RewriteOptions options;
  options.remove_ice = session.options().ice() != v1::ICE_HANDLING_KEEP;
  options.rewrite_origin = session.options().rewrite_origin();
  for (const v1::RelayEndpoint& endpoint : other.relay()) {
    if (options.relay_ip.empty()) options.relay_ip = endpoint.rtp().ip();
    options.streams.push_back({endpoint.media_index(), endpoint.rtp().ip(), static_cast<uint16_t>(endpoint.rtp().port()),
                               static_cast<uint16_t>(endpoint.rtcp().port())});
  }
  auto rewritten = sdp::Rewrite(description, options);
  if (!rewritten.ok()) return absl::InvalidArgumentError(absl::StrCat("sdp: ", rewritten.status().message()));
  return rewritten;
}

absl::Status SessionManager::SyncWorker(v1::Session& session, uint32_t stream_count) {
  auto worker = workers_->Get(session.worker_id());
  if (!worker.ok()) {
    // The session exists; its relay is not reachable right now (lost, or not yet re-registered).
    return absl::UnavailableError(absl::StrCat("relay worker ", session.worker_id(), ": ", worker.status().message()));
  }
  v1::UpdateRelaySessionRequest request;
  *request.mutable_session() = session;
  request.set_stream_count(stream_count);
  v1::UpdateRelaySessionResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, options_.worker_call_timeout);
  grpc::Status status = worker->stub->UpdateRelaySession(&context, request, &response);
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
    return absl::UnavailableError(absl::StrCat("relay worker ", worker->worker_id, " no longer has the session"));
  }
  if (!status.ok()) return WorkerError(worker->worker_id, status);
  *session.mutable_caller()->mutable_relay() = response.caller();
  *session.mutable_callee()->mutable_relay() = response.callee();
  return absl::OkStatus();
}

absl::StatusOr<std::string> SessionManager::ApplyUpdate(v1::Session& session, v1::Side side, const std::string& sdp_text,
                                                       const v1::SocketAddress& signaling_source) {
  if (session.state() == v1::SESSION_STATE_ENDED) {
    return absl::FailedPreconditionError(absl::StrCat("session_id: session ", session.session_id(), " has ended"));
  }
  v1::Session updated = session;
  ASSIGN_OR_RETURN(sdp::SessionDescription description, DescribeLeg(updated, side, sdp_text, signaling_source));
  RETURN_IF_ERROR(SyncWorker(updated, static_cast<uint32_t>(description.media().size())));
  ASSIGN_OR_RETURN(std::string rewritten, RewriteForOtherSide(updated, side, description));
  *updated.mutable_updated_at() = ToProto(clock_());
  session = std::move(updated);
  return rewritten;
}

absl::StatusOr<v1::AllocateSessionResponse> SessionManager::Allocate(const v1::AllocateSessionRequest& request,
                                                                     const grpcutil::Caller& caller) {
  RETURN_IF_ERROR(CheckToken("call_id", request.call_id(), 256));
  RETURN_IF_ERROR(CheckToken("from_tag", request.from_tag(), 128));
  const v1::SessionOptions& opts = request.options();
  RETURN_IF_ERROR(CheckEnum("options.latching_mode", opts.latching_mode(), v1::LatchingMode_IsValid, true));
  RETURN_IF_ERROR(CheckEnum("options.ice", opts.ice(), v1::IceHandling_IsValid, true));
  RETURN_IF_ERROR(CheckEnum("options.callee_ip_family", opts.callee_ip_family(), v1::IpFamily_IsValid, true));
  if (opts.has_media_timeout()) {
    RETURN_IF_ERROR(CheckDuration("options.media_timeout", true, opts.media_timeout(), absl::Seconds(1), absl::Hours(24))
                        .status());
  }
  if (opts.has_final_timeout()) {
    RETURN_IF_ERROR(CheckDuration("options.final_timeout", true, opts.final_timeout(), absl::Seconds(1), absl::Hours(24 * 7))
                        .status());
  }

  const absl::Time now = clock_();
  const std::string owner = caller.owner();
  const std::string call_key = CallKey(owner, request.call_id(), request.from_tag());
  absl::MutexLock call_lock(&CallStripe(request.call_id()));

  // The same Call-ID and from-tag again is a re-offer of the same call: same worker, same ports.
  if (auto existing_id = store_->Get(Table::kSessionCall, call_key); existing_id.ok()) {
    absl::MutexLock lock(&SessionStripe(*existing_id));
    auto session = Load(*existing_id);
    if (session.ok() && session->state() != v1::SESSION_STATE_ENDED) {
      ASSIGN_OR_RETURN(std::string sdp, ApplyUpdate(*session, v1::SIDE_CALLER, request.sdp(), request.signaling_source()));
      RETURN_IF_ERROR(Save(*session));
      Publish(v1::SESSION_EVENT_TYPE_UPDATED, *session);
      v1::AllocateSessionResponse response;
      *response.mutable_session() = *std::move(session);
      response.set_sdp(std::move(sdp));
      return response;
    }
  }

  RETURN_IF_ERROR(quota_.Acquire(owner));
  absl::Cleanup give_back = [this, &owner] { quota_.Release(owner); };
  v1::Session session;
  session.set_session_id(NewSessionId());
  session.set_owner(owner);
  session.set_call_id(request.call_id());
  session.set_state(v1::SESSION_STATE_OFFERED);
  *session.mutable_options() = opts;
  if (!opts.has_media_timeout()) *session.mutable_options()->mutable_media_timeout() = ToProto(options_.media_timeout);
  if (!opts.has_final_timeout()) *session.mutable_options()->mutable_final_timeout() = ToProto(options_.final_timeout);
  if (opts.ice() == v1::ICE_HANDLING_UNSPECIFIED) session.mutable_options()->set_ice(v1::ICE_HANDLING_REMOVE);
  session.mutable_caller()->set_tag(request.from_tag());
  *session.mutable_created_at() = ToProto(now);
  *session.mutable_updated_at() = ToProto(now);
  ASSIGN_OR_RETURN(sdp::SessionDescription description,
                   DescribeLeg(session, v1::SIDE_CALLER, request.sdp(), request.signaling_source()));
  const uint32_t streams = static_cast<uint32_t>(description.media().size());

  // Offer the callee the family asked for, else the caller's; the relay bridges the two.
  uint32_t callee_family = 4;
  for (const v1::RemoteMedia& media : session.caller().remote()) {
    if (auto ip = net::IpAddress::Parse(media.sdp_rtp().ip()); ip.ok()) {
      callee_family = ip->is_v6() ? 6 : 4;
      break;
    }
  }
  if (opts.callee_ip_family() != v1::IP_FAMILY_UNSPECIFIED) {
    callee_family = opts.callee_ip_family() == v1::IP_FAMILY_IPV6 ? 6 : 4;
  }

  absl::flat_hash_set<std::string> failed;
  absl::Status last_error;
  for (int attempt = 0; attempt < kMaxPlacementAttempts; ++attempt) {
    auto worker = workers_->Place(streams * kPortsPerStream, failed);
    if (!worker.ok()) {
      if (!failed.empty()) break;  // report the worker failure, not "no worker left"
      (absl::IsUnavailable(worker.status()) ? metrics_->placement_no_worker : metrics_->placement_no_capacity)->Increment();
      return worker.status();
    }
    session.set_worker_id(worker->worker_id);
    v1::CreateRelaySessionRequest create;
    *create.mutable_session() = session;
    create.set_stream_count(streams);
    create.set_callee_family(callee_family);
    v1::CreateRelaySessionResponse created;
    grpc::ClientContext context;
    SetDeadline(&context, options_.worker_call_timeout);
    grpc::Status status = worker->stub->CreateRelaySession(&context, create, &created);
    if (status.ok()) {
      *session.mutable_caller()->mutable_relay() = created.caller();
      *session.mutable_callee()->mutable_relay() = created.callee();
      last_error = absl::OkStatus();
      break;
    }
    metrics_->placement_worker_error->Increment();
    last_error = WorkerError(worker->worker_id, status);
    log::LogWarning("relay worker refused a session")
        .Kv("worker_id", worker->worker_id)
        .Kv("call_id", request.call_id())
        .Kv("error", last_error.ToString());
    failed.insert(worker->worker_id);
    session.clear_worker_id();
  }
  if (session.worker_id().empty()) {
    return last_error.ok() ? absl::UnavailableError("no relay worker could take the call") : last_error;
  }

  auto sdp = RewriteForOtherSide(session, v1::SIDE_CALLER, description);
  absl::Status saved = sdp.ok() ? Save(session) : sdp.status();
  if (saved.ok()) saved = store_->Put(Table::kSessionCall, call_key, session.session_id(), absl::InfiniteFuture());
  if (saved.ok()) {
    saved = store_->Put(Table::kSessionWorker, absl::StrCat(session.worker_id(), kSep, session.session_id()), "",
                        absl::InfiniteFuture());
  }
  if (saved.ok()) {
    saved = store_->Put(Table::kSessionOwner, absl::StrCat(owner, kSep, session.session_id()), "", absl::InfiniteFuture());
  }
  if (!saved.ok()) {
    // Never announced: free the relay ports, but no event and no gauge change.
    v1::DeleteRelaySessionResponse ignored;
    DeleteOnWorker(session.worker_id(), session.session_id(), v1::SESSION_EVENT_TYPE_RELEASED, &ignored);
    store_->Delete(Table::kSessions, session.session_id()).IgnoreError();
    store_->Delete(Table::kSessionCall, call_key).IgnoreError();
    store_->Delete(Table::kSessionWorker, absl::StrCat(session.worker_id(), kSep, session.session_id())).IgnoreError();
    return saved;
  }
  std::move(give_back).Cancel();  // End gives it back
  metrics_->sessions_active->Increment();
  metrics_->session_allocations->Increment();
  log::LogInfo("session allocated")
      .Kv("session_id", session.session_id())
      .Kv("call_id", session.call_id())
      .Kv("worker_id", session.worker_id())
      .Kv("streams", streams)
      .Kv("caller_nat", session.caller().verdict().state() == v1::NAT_STATE_BEHIND_NAT);
  Publish(v1::SESSION_EVENT_TYPE_ALLOCATED, session);
  v1::AllocateSessionResponse response;
  *response.mutable_session() = std::move(session);
  response.set_sdp(*std::move(sdp));
  return response;
}

absl::StatusOr<v1::AnswerSessionResponse> SessionManager::Answer(const v1::AnswerSessionRequest& request,
                                                                 const grpcutil::Caller& caller) {
  RETURN_IF_ERROR(CheckToken("session_id", request.session_id(), 64));
  RETURN_IF_ERROR(CheckToken("to_tag", request.to_tag(), 128));
  absl::MutexLock lock(&SessionStripe(request.session_id()));
  ASSIGN_OR_RETURN(v1::Session session, LoadFor(request.session_id(), caller));
  if (session.state() == v1::SESSION_STATE_ANSWERED && session.callee().tag() != request.to_tag()) {
    // A forked call answered by another branch: the relay has one callee leg.
    return absl::FailedPreconditionError(absl::StrCat("to_tag: the session was answered by to-tag \"",
                                                      Excerpt(session.callee().tag()), "\""));
  }
  const size_t offered = session.caller().remote_size();
  auto description = sdp::SessionDescription::Parse(request.sdp());
  if (description.ok() && description->media().size() != offered) {
    return absl::InvalidArgumentError(absl::StrCat("sdp: the answer has ", description->media().size(),
                                                   " m= lines, the offer had ", offered, " (RFC 3264)"));
  }
  if (session.state() == v1::SESSION_STATE_ENDED) {
    return absl::FailedPreconditionError(absl::StrCat("session_id: session ", session.session_id(), " has ended"));
  }
  const bool first_answer = session.state() == v1::SESSION_STATE_OFFERED;
  // Set before the worker is told, so the copy it keeps (and re-announces after a control restart)
  // says answered.
  session.mutable_callee()->set_tag(request.to_tag());
  session.set_state(v1::SESSION_STATE_ANSWERED);
  if (first_answer) *session.mutable_answered_at() = ToProto(clock_());
  ASSIGN_OR_RETURN(std::string sdp, ApplyUpdate(session, v1::SIDE_CALLEE, request.sdp(), request.signaling_source()));
  RETURN_IF_ERROR(Save(session));
  Publish(first_answer ? v1::SESSION_EVENT_TYPE_ANSWERED : v1::SESSION_EVENT_TYPE_UPDATED, session);
  v1::AnswerSessionResponse response;
  *response.mutable_session() = std::move(session);
  response.set_sdp(std::move(sdp));
  return response;
}

absl::StatusOr<v1::UpdateSessionResponse> SessionManager::Update(const v1::UpdateSessionRequest& request,
                                                                 const grpcutil::Caller& caller) {
  RETURN_IF_ERROR(CheckToken("session_id", request.session_id(), 64));
  RETURN_IF_ERROR(CheckEnum("side", request.side(), v1::Side_IsValid, false));
  absl::MutexLock lock(&SessionStripe(request.session_id()));
  ASSIGN_OR_RETURN(v1::Session session, LoadFor(request.session_id(), caller));
  if (request.side() == v1::SIDE_CALLEE && session.state() == v1::SESSION_STATE_OFFERED) {
    return absl::FailedPreconditionError("side: the callee has not answered yet; use AnswerSession");
  }
  ASSIGN_OR_RETURN(std::string sdp, ApplyUpdate(session, request.side(), request.sdp(), request.signaling_source()));
  RETURN_IF_ERROR(Save(session));
  Publish(v1::SESSION_EVENT_TYPE_UPDATED, session);
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
  if (auto worker = workers_->Get(session.worker_id()); worker.ok()) {
    v1::GetRelaySessionRequest request;
    request.set_session_id(session_id);
    v1::GetRelaySessionResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, std::min(options_.worker_call_timeout, absl::Milliseconds(500)));
    if (worker->stub->GetRelaySession(&context, request, &response).ok()) {
      *session.mutable_caller()->mutable_stats() = response.caller();
      *session.mutable_callee()->mutable_stats() = response.callee();
    }
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
  v1::ListSessionsResponse response;
  // A PBX walks its own index (and filters by worker); others the worker index or the whole table.
  const bool by_owner = !caller.sees_all();
  const bool by_worker = !request.worker_id().empty();
  const Table table = by_owner ? Table::kSessionOwner : by_worker ? Table::kSessionWorker : Table::kSessions;
  const std::string prefix =
      by_owner ? absl::StrCat(caller.owner(), kSep) : by_worker ? absl::StrCat(request.worker_id(), kSep) : "";
  ASSIGN_OR_RETURN(auto records, store_->List(table, prefix, cursor, page_size + 1));
  for (size_t i = 0; i < records.size() && i < page_size; ++i) {
    v1::Session session;
    if (table != Table::kSessions) {
      auto loaded = Load(records[i].key.substr(prefix.size()));
      if (!loaded.ok()) continue;
      session = *std::move(loaded);
    } else if (!session.ParseFromString(records[i].value)) {
      continue;
    }
    if (by_owner && by_worker && session.worker_id() != request.worker_id()) continue;
    if (!caller.owns(session.owner())) continue;  // a stale index entry never shows another's call
    *response.add_sessions() = std::move(session);
  }
  if (records.size() > page_size) response.set_next_page_token(EncodePageToken(records[page_size - 1].key));
  return response;
}

absl::StatusOr<v1::Session> SessionManager::Release(const std::string& session_id, const grpcutil::Caller& caller) {
  RETURN_IF_ERROR(CheckToken("session_id", session_id, 64));
  absl::MutexLock lock(&SessionStripe(session_id));
  ASSIGN_OR_RETURN(v1::Session session, LoadFor(session_id, caller));
  if (session.state() != v1::SESSION_STATE_ENDED) End(session, v1::SESSION_EVENT_TYPE_RELEASED, /*tell_worker=*/true);
  return session;
}

bool SessionManager::DeleteOnWorker(const std::string& worker_id, const std::string& session_id,
                                    v1::SessionEventType reason, v1::DeleteRelaySessionResponse* response) {
  auto worker = workers_->Get(worker_id);
  // A silent worker is not waited on: the sweeper must not stall behind it.
  if (!worker.ok() || !workers_->Responsive(worker_id, clock_())) return false;
  v1::DeleteRelaySessionRequest request;
  request.set_session_id(session_id);
  request.set_reason(reason);
  grpc::ClientContext context;
  SetDeadline(&context, options_.worker_call_timeout);
  grpc::Status status = worker->stub->DeleteRelaySession(&context, request, response);
  if (!status.ok() && status.error_code() != grpc::StatusCode::NOT_FOUND) {
    // It keeps the ports until it reports the session's media timeout; control then deletes it again.
    log::LogWarning("relay worker did not delete a session")
        .Kv("session_id", session_id)
        .Kv("worker_id", worker_id)
        .Kv("error", status.error_message());
  }
  return status.ok();
}

void SessionManager::End(v1::Session& session, v1::SessionEventType reason, bool tell_worker) {
  v1::DeleteRelaySessionResponse final_figures;
  if (tell_worker && DeleteOnWorker(session.worker_id(), session.session_id(), reason, &final_figures)) {
    *session.mutable_caller()->mutable_stats() = final_figures.caller();
    *session.mutable_callee()->mutable_stats() = final_figures.callee();
    workers_->SessionEnded(session.worker_id(), kPortsPerStream * session.caller().relay_size());
  }
  const bool was_active = session.state() != v1::SESSION_STATE_ENDED;
  session.set_state(v1::SESSION_STATE_ENDED);
  session.set_end_reason(reason);
  *session.mutable_updated_at() = ToProto(clock_());
  Save(session).IgnoreError();
  const std::string call_key = CallKey(session.owner(), session.call_id(), session.caller().tag());
  if (auto id = store_->Get(Table::kSessionCall, call_key); id.ok() && *id == session.session_id()) {
    store_->Delete(Table::kSessionCall, call_key).IgnoreError();
  }
  store_->Delete(Table::kSessionWorker, absl::StrCat(session.worker_id(), kSep, session.session_id())).IgnoreError();
  if (was_active) {
    if (!TakeUncounted(session.session_id())) quota_.Release(session.owner());
    metrics_->sessions_active->Decrement();
    if (metrics_->session_ends[reason]) metrics_->session_ends[reason]->Increment();
  }
  log::LogInfo("session ended")
      .Kv("session_id", session.session_id())
      .Kv("call_id", session.call_id())
      .Kv("reason", v1::SessionEventType_Name(reason));
  Publish(reason, session);
}

absl::Status SessionManager::CheckAnnounced(const std::string& worker_id, uint32_t port_min, uint32_t port_max,
                                           const google::protobuf::RepeatedPtrField<v1::Session>& sessions) {
  for (int i = 0; i < sessions.size(); ++i) {
    const v1::Session& announced = sessions[i];
    auto known = Load(announced.session_id());
    if (known.ok() && known->worker_id() != worker_id && known->state() != v1::SESSION_STATE_ENDED) {
      return absl::PermissionDeniedError(absl::StrCat("sessions[", i, "]: session ", Excerpt(announced.session_id()),
                                                      " is carried by worker ", known->worker_id()));
    }
    for (const v1::Leg* leg : {&announced.caller(), &announced.callee()}) {
      for (const v1::RelayEndpoint& relay : leg->relay()) {
        const uint32_t port = relay.rtp().port();
        if (port_min != 0 && (port < port_min || std::max(port, relay.rtcp().port()) > port_max)) {
          return absl::PermissionDeniedError(absl::StrCat("sessions[", i, "]: relay port ", port,
                                                          " is outside the worker's range ", port_min, "-", port_max));
        }
      }
    }
  }
  return absl::OkStatus();
}

void SessionManager::AdoptFromWorker(const std::string& worker_id,
                                     const google::protobuf::RepeatedPtrField<v1::Session>& sessions,
                                     absl::Time registered_at) {
  absl::flat_hash_set<std::string> announced;
  size_t adopted = 0;
  for (const v1::Session& announced_session : sessions) {
    if (announced_session.session_id().empty()) continue;
    announced.insert(announced_session.session_id());
    absl::MutexLock call_lock(&CallStripe(announced_session.call_id()));
    absl::MutexLock lock(&SessionStripe(announced_session.session_id()));
    auto known = Load(announced_session.session_id());
    const bool revive = !known.ok() || (known->state() == v1::SESSION_STATE_ENDED &&
                                        known->end_reason() == v1::SESSION_EVENT_TYPE_WORKER_LOST);
    if (!revive) continue;
    v1::Session session = announced_session;
    if (known.ok()) {
      // A call control still remembers keeps who owns it and what it is: a worker reports only
      // what it relays.
      session.set_owner(known->owner());
      session.set_call_id(known->call_id());
      session.mutable_caller()->set_tag(known->caller().tag());
      *session.mutable_created_at() = known->created_at();
      *session.mutable_options() = known->options();
    } else {
      // Control restarted and has only the worker's word: never let it take over a live call's
      // Call-ID (a re-INVITE would follow it), nor claim a creation time in the future.
      auto holder = store_->Get(Table::kSessionCall, CallKey(session.owner(), session.call_id(), session.caller().tag()));
      if (holder.ok() && *holder != session.session_id()) {
        auto other = Load(*holder);
        if (other.ok() && other->state() != v1::SESSION_STATE_ENDED) {
          log::LogWarning("announced session refused: its call is live under another session")
              .Kv("worker_id", worker_id)
              .Kv("session_id", session.session_id())
              .Kv("other_session_id", other->session_id());
          metrics_->sessions_adoption_refused->Increment();
          continue;
        }
      }
      if (FromProto(session.created_at()) > clock_()) *session.mutable_created_at() = ToProto(clock_());
    }
    session.set_worker_id(worker_id);
    session.set_state(session.has_answered_at() ? v1::SESSION_STATE_ANSWERED : v1::SESSION_STATE_OFFERED);
    session.clear_end_reason();
    *session.mutable_updated_at() = ToProto(clock_());
    if (!Save(session).ok()) continue;
    store_->Put(Table::kSessionCall, CallKey(session.owner(), session.call_id(), session.caller().tag()),
                session.session_id(), absl::InfiniteFuture()).IgnoreError();
    store_->Put(Table::kSessionOwner, absl::StrCat(session.owner(), kSep, session.session_id()), "",
                absl::InfiniteFuture()).IgnoreError();
    // Kept even past the quota (the calls exist on the relay already), but not counted, so that
    // ending them does not give back what they never took.
    if (!quota_.Acquire(session.owner()).ok()) {
      MarkUncounted(session.session_id());
      metrics_->sessions_adopted_over_quota->Increment();
      log::LogWarning("adopted session over its owner's quota").Kv("owner", session.owner());
    }
    store_->Put(Table::kSessionWorker, absl::StrCat(worker_id, kSep, session.session_id()), "",
                absl::InfiniteFuture()).IgnoreError();
    metrics_->sessions_active->Increment();
    metrics_->sessions_adopted->Increment();
    ++adopted;
  }
  // Sessions control placed on this worker that it no longer has are gone (the worker restarted).
  auto mine = store_->List(Table::kSessionWorker, absl::StrCat(worker_id, kSep), "", SIZE_MAX);
  size_t orphaned = 0;
  if (mine.ok()) {
    for (const StoredRecord& index : *mine) {
      const std::string session_id = index.key.substr(worker_id.size() + 1);
      if (announced.contains(session_id)) continue;
      absl::MutexLock lock(&SessionStripe(session_id));
      auto session = Load(session_id);
      // Placed since the registration (the worker is placeable already): not an orphan.
      if (session.ok() && session->state() != v1::SESSION_STATE_ENDED &&
          FromProto(session->created_at()) < registered_at) {
        End(*session, v1::SESSION_EVENT_TYPE_WORKER_LOST, /*tell_worker=*/false);
        ++orphaned;
      }
    }
  }
  if (adopted || orphaned) {
    log::LogInfo("worker sessions reconciled").Kv("worker_id", worker_id).Kv("adopted", adopted).Kv("ended", orphaned);
  }
}

void SessionManager::HandleWorkerEvent(const std::string& worker_id, const v1::WorkerEvent& event) {
  absl::MutexLock lock(&SessionStripe(event.session_id()));
  auto session = Load(event.session_id());
  if (!session.ok() || session->worker_id() != worker_id || session->state() == v1::SESSION_STATE_ENDED) {
    // The worker still holds a session control has ended or never knew (a create that timed out
    // here but succeeded there): its media timeout is the moment to free those ports.
    if (event.type() == v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT || event.type() == v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT) {
      v1::DeleteRelaySessionResponse ignored;
      DeleteOnWorker(worker_id, event.session_id(), event.type(), &ignored);
    }
    return;
  }
  switch (event.type()) {
    case v1::SESSION_EVENT_TYPE_LATCHED:
    case v1::SESSION_EVENT_TYPE_RELATCHED: {
      v1::Leg* leg = LegOf(*session, event.side());
      *leg->mutable_stats()->mutable_latched_source() = event.source();
      *leg->mutable_stats()->mutable_latched_at() = event.time();
      if (event.type() == v1::SESSION_EVENT_TYPE_RELATCHED) {
        leg->mutable_stats()->set_relatch_count(leg->stats().relatch_count() + 1);
      }
      *session->mutable_updated_at() = ToProto(clock_());
      if (Save(*session).ok()) Publish(event.type(), *session);
      break;
    }
    case v1::SESSION_EVENT_TYPE_LATCH_CONTESTED: {
      // Nothing changes in the session: watchers see the attack (or a misfit mode) as it happens.
      SessionEvent contest;
      *contest.mutable_time() = event.time();
      contest.set_side(event.side());
      *contest.mutable_source() = event.source();
      Publish(event.type(), *session, std::move(contest));
      log::LogInfo("latch contested")
          .Kv("session_id", session->session_id())
          .Kv("side", v1::Side_Name(event.side()))
          .Kv("source", absl::StrCat(event.source().ip(), ":", event.source().port()));
      break;
    }
    case v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT:
    case v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT:
      End(*session, event.type(), /*tell_worker=*/true);
      break;
    default:
      break;
  }
}

void SessionManager::WorkerLost(const std::string& worker_id) {
  auto mine = store_->List(Table::kSessionWorker, absl::StrCat(worker_id, kSep), "", SIZE_MAX);
  if (!mine.ok()) return;
  for (const StoredRecord& index : *mine) {
    const std::string session_id = index.key.substr(worker_id.size() + 1);
    absl::MutexLock lock(&SessionStripe(session_id));
    // It registered again meanwhile and re-announced what it still carries: leave the rest to that.
    if (workers_->Get(worker_id).ok()) return;
    auto session = Load(session_id);
    if (session.ok() && session->state() != v1::SESSION_STATE_ENDED) {
      End(*session, v1::SESSION_EVENT_TYPE_WORKER_LOST, /*tell_worker=*/false);
    }
  }
}

size_t SessionManager::SweepExpired() {
  const absl::Time now = clock_();
  size_t ended = 0;
  constexpr size_t kBatch = 1024;
  for (;;) {
    // Listed, not taken: a session must stay readable while its worker is told to delete it.
    auto expired = store_->ListExpired(Table::kSessions, now, kBatch);
    if (!expired.ok() || expired->empty()) break;
    size_t handled = 0;
    for (const StoredRecord& record : *expired) {
      absl::MutexLock lock(&SessionStripe(record.key));
      // Signalling may have refreshed it since the listing: then it lives on.
      auto session = Load(record.key);
      if (absl::IsDataLoss(session.status())) {
        // Unreadable: it would stay at the head of the expiry index and stall every later sweep.
        log::LogError("corrupt session record deleted").Kv("session_id", record.key);
        store_->Delete(Table::kSessions, record.key).IgnoreError();
        ++handled;
        continue;
      }
      if (!session.ok() || ExpiryOf(*session) > now) continue;
      ++handled;
      if (session->state() == v1::SESSION_STATE_ENDED) {
        store_->Delete(Table::kSessions, record.key).IgnoreError();  // kept for its retention only
        store_->Delete(Table::kSessionOwner, absl::StrCat(session->owner(), kSep, record.key)).IgnoreError();
        continue;
      }
      End(*session,
          now >= FinalDeadlineOf(*session) ? v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT : v1::SESSION_EVENT_TYPE_EXPIRED,
          /*tell_worker=*/true);
      ++ended;
    }
    if (expired->size() < kBatch || handled == 0) break;
  }
  return ended;
}

void SessionManager::MarkUncounted(const std::string& session_id) {
  absl::MutexLock lock(&uncounted_mu_);
  uncounted_.insert(session_id);
}

bool SessionManager::TakeUncounted(const std::string& session_id) {
  absl::MutexLock lock(&uncounted_mu_);
  return uncounted_.erase(session_id) > 0;
}

}  // namespace latchkey::control
