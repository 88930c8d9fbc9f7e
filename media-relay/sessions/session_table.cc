#include "media-relay/sessions/session_table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/time/proto_time.h"

namespace latchkey::relay {
namespace {

constexpr int kMaxBindAttempts = 16;
constexpr uint32_t kMaxStreams = 16;

// The IP family (4 or 6) of a leg's SDP for a stream; 4 when unknown.
int FamilyOf(const v1::Leg& leg, uint32_t index) {
  for (const v1::RemoteMedia& media : leg.remote()) {
    if (media.media_index() == index) {
      auto ip = net::IpAddress::Parse(media.sdp_rtp().ip());
      if (ip.ok()) return ip->is_v6() ? 6 : 4;
    }
  }
  return 4;
}

// A leg muxes when its endpoint's SDP said a=rtcp-mux; before the answer the callee is offered what
// the caller offered.
bool Muxed(const v1::Leg& leg, uint32_t index, bool fallback) {
  for (const v1::RemoteMedia& m : leg.remote()) {
    if (m.media_index() == index) return m.rtcp_mux();
  }
  return fallback;
}

// Socket path and kernel fast path together.
uint64_t PacketsIn(const RelayLeg& leg) {
  return leg.packets_in.load(std::memory_order_relaxed) + leg.kernel_packets_in.load(std::memory_order_relaxed);
}

void AddLeg(const RelayLeg& leg, v1::LegStats* out) {
  auto both = [](const std::atomic<uint64_t>& socket, const std::atomic<uint64_t>& kernel) {
    return socket.load(std::memory_order_relaxed) + kernel.load(std::memory_order_relaxed);
  };
  out->set_packets_in(out->packets_in() + both(leg.packets_in, leg.kernel_packets_in));
  out->set_packets_out(out->packets_out() + both(leg.packets_out, leg.kernel_packets_out));
  out->set_bytes_in(out->bytes_in() + both(leg.bytes_in, leg.kernel_bytes_in));
  out->set_bytes_out(out->bytes_out() + both(leg.bytes_out, leg.kernel_bytes_out));
  out->set_packets_dropped(out->packets_dropped() + leg.dropped.load(std::memory_order_relaxed));
  const LegSnapshot snapshot = leg.Snapshot();
  // The first stream (audio) speaks for the leg's latch.
  if (snapshot.latched_source && !out->has_latched_source()) {
    out->mutable_latched_source()->set_ip(snapshot.latched_source->ip.ToString());
    out->mutable_latched_source()->set_port(snapshot.latched_source->port);
    *out->mutable_latched_at() = ToProto(snapshot.latched_at);
    out->set_ssrc(snapshot.ssrc);
    // While the kernel carries the stream its estimate is the current one (8 kHz, as the socket
    // path's default).
    out->set_jitter_ms(leg.kernel_active.load(std::memory_order_relaxed)
                           ? leg.kernel_jitter16.load(std::memory_order_relaxed) / 16.0 / 8.0
                           : leg.stats.JitterMs());
  }
  out->set_packets_lost(out->packets_lost() + leg.stats.Lost() + leg.kernel_lost.load(std::memory_order_relaxed));
  out->set_relatch_count(out->relatch_count() + snapshot.relatch_count);
}

}  // namespace

SessionTable::SessionTable(SessionTableOptions options, PortPool pool, PacketEngine* engine)
    : options_(std::move(options)), engine_(engine), pool_(std::move(pool)) {
  addressing_.port_min = pool_.first_port();
  addressing_.port_max = pool_.last_port();
  for (const MediaAddresses& a : options_.addresses) {
    addressing_.own_ips.push_back(a.bind);
    addressing_.own_ips.push_back(a.advertised);
    if (a.bind.IsLoopback()) addressing_.allow_loopback = true;
  }
}

SessionTable::~SessionTable() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, session] : sessions_) {
    if (engine_) {
      for (Stream& stream : session->streams) engine_->Detach(stream.relay);
    }
  }
}

const MediaAddresses& SessionTable::AddressesFor(int family) const {
  for (const MediaAddresses& a : options_.addresses) {
    if ((family == 6) == a.bind.is_v6()) return a;
  }
  return options_.addresses.front();  // IPv4<->IPv6 bridging: the other family is better than none
}

absl::Status SessionTable::AllocateLeg(const MediaAddresses& addresses, RelayLeg* leg, absl::Time now) {
  absl::Status last = absl::OkStatus();
  for (int attempt = 0; attempt < kMaxBindAttempts; ++attempt) {
    ASSIGN_OR_RETURN(uint16_t port, pool_.Allocate(now));
    auto rtp = UdpSocket::Bind(addresses.bind, port);
    auto rtcp = rtp.ok() ? UdpSocket::Bind(addresses.bind, port + 1) : rtp.status();
    if (rtp.ok() && rtcp.ok()) {
      leg->rtp_port = port;
      leg->bind_ip = addresses.bind;
      leg->rtp = *std::move(rtp);
      leg->rtcp = *std::move(rtcp);
      return absl::OkStatus();
    }
    // Someone else holds it: keep it out of rotation for a while and try another pair.
    last = rtcp.status();
    pool_.Release(port, now);
  }
  return absl::ResourceExhaustedError(absl::StrCat("no bindable relay port pair: ", last.message()));
}

absl::Status SessionTable::GrowStreams(Session& session, const v1::Session& record, uint32_t stream_count,
                                       int callee_family, absl::Time now) {
  if (stream_count == 0 || stream_count > kMaxStreams) {
    return absl::InvalidArgumentError(absl::StrCat("stream_count: must be 1-", kMaxStreams, ", got ", stream_count));
  }
  while (session.streams.size() < stream_count) {
    const uint32_t index = static_cast<uint32_t>(session.streams.size());
    Stream stream;
    stream.relay = std::make_shared<RelayStream>();
    stream.relay->session_id = record.session_id();
    stream.relay->media_index = index;
    stream.relay->activity = session.activity;
    stream.caller_addresses = &AddressesFor(FamilyOf(record.caller(), index));
    stream.callee_addresses = &AddressesFor(callee_family);
    absl::Status status = AllocateLeg(*stream.caller_addresses, &stream.relay->caller, now);
    if (status.ok()) status = AllocateLeg(*stream.callee_addresses, &stream.relay->callee, now);
    if (!status.ok()) {
      if (stream.relay->caller.rtp_port) pool_.Release(stream.relay->caller.rtp_port, now);
      return status;
    }
    session.streams.push_back(std::move(stream));
  }
  return absl::OkStatus();
}

void SessionTable::ReleaseStreams(Session& session, absl::Time now) {
  for (Stream& stream : session.streams) {
    pool_.Release(stream.relay->caller.rtp_port, now);
    pool_.Release(stream.relay->callee.rtp_port, now);
    if (engine_) engine_->Detach(stream.relay);
  }
  session.streams.clear();
}

void SessionTable::Describe(Session& session, const v1::Session& record) {
  session.record = record.SerializeAsString();
  session.answered_at = record.has_answered_at() ? FromProto(record.answered_at()) : absl::InfiniteFuture();
}

void SessionTable::SyncEngine(Session& session, const v1::Session& record, size_t attached_before) {
  if (!engine_) return;
  const SessionTimeouts timeouts = TimeoutsFor(record, session.created_at);
  for (size_t i = 0; i < session.streams.size(); ++i) {
    const uint32_t index = static_cast<uint32_t>(i);
    LegTargets targets = TargetsFor(record, index, addressing_);
    if (i < attached_before) {
      engine_->Configure(session.streams[i].relay, std::move(targets.caller), std::move(targets.callee), timeouts);
    } else {
      engine_->Attach(session.streams[i].relay, std::move(targets.caller), std::move(targets.callee), timeouts);
    }
  }
}

void SessionTable::FillEndpoints(const Session& session, const v1::Session& record,
                                 google::protobuf::RepeatedPtrField<v1::RelayEndpoint>* caller,
                                 google::protobuf::RepeatedPtrField<v1::RelayEndpoint>* callee) {
  auto fill = [](uint32_t index, const RelayLeg& leg, const MediaAddresses& addresses, bool mux, v1::RelayEndpoint* out) {
    out->set_media_index(index);
    out->mutable_rtp()->set_ip(addresses.advertised.ToString());
    out->mutable_rtp()->set_port(leg.rtp_port);
    out->mutable_rtcp()->set_ip(addresses.advertised.ToString());
    out->mutable_rtcp()->set_port(mux ? leg.rtp_port : leg.rtp_port + 1);
  };
  for (uint32_t i = 0; i < session.streams.size(); ++i) {
    const Stream& s = session.streams[i];
    const bool caller_mux = Muxed(record.caller(), i, false);
    fill(i, s.relay->caller, *s.caller_addresses, caller_mux, caller->Add());
    fill(i, s.relay->callee, *s.callee_addresses, Muxed(record.callee(), i, caller_mux), callee->Add());
  }
}

void SessionTable::FillStats(const Session& session, v1::LegStats* caller, v1::LegStats* callee) {
  for (const Stream& stream : session.streams) {
    AddLeg(stream.relay->caller, caller);
    AddLeg(stream.relay->callee, callee);
  }
}

absl::StatusOr<v1::CreateRelaySessionResponse> SessionTable::Create(const v1::CreateRelaySessionRequest& request,
                                                                    absl::Time now) {
  const std::string& id = request.session().session_id();
  if (id.empty()) return absl::InvalidArgumentError("session.session_id: required");
  if (request.callee_family() != 4 && request.callee_family() != 6) {
    return absl::InvalidArgumentError(absl::StrCat("callee_family: must be 4 or 6, got ", request.callee_family()));
  }
  absl::MutexLock lock(&mu_);
  v1::CreateRelaySessionResponse response;
  if (auto it = sessions_.find(id); it != sessions_.end()) {  // a retried create: same ports
    v1::Session record;
    record.ParseFromString(it->second->record);
    FillEndpoints(*it->second, record, response.mutable_caller(), response.mutable_callee());
    return response;
  }
  if (draining_) return absl::UnavailableError("relay is draining");
  if (sessions_.size() >= options_.max_sessions) {
    return absl::ResourceExhaustedError(absl::StrCat("relay is at its limit of ", options_.max_sessions, " sessions"));
  }
  auto session = std::make_unique<Session>();
  Describe(*session, request.session());
  session->version = request.session().version();
  session->created_at = now;
  absl::Status status =
      GrowStreams(*session, request.session(), request.stream_count(), static_cast<int>(request.callee_family()), now);
  if (!status.ok()) {
    ReleaseStreams(*session, now);
    return status;
  }
  SyncEngine(*session, request.session(), 0);
  FillEndpoints(*session, request.session(), response.mutable_caller(), response.mutable_callee());
  sessions_.emplace(id, std::move(session));
  return response;
}

absl::StatusOr<v1::UpdateRelaySessionResponse> SessionTable::Update(const v1::UpdateRelaySessionRequest& request,
                                                                    absl::Time now) {
  const std::string& id = request.session().session_id();
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return absl::NotFoundError(absl::StrCat("session_id: no relay session \"", id, "\""));
  Session& session = *it->second;
  // Version 0: a control that does not version its writes; always applied.
  const uint64_t version = request.session().version();
  if (version != 0 && version < session.version) {
    return absl::AbortedError(absl::StrCat("session.version: ", version, " is older than the relay's ", session.version,
                                           " (another control writer changed the session)"));
  }
  const int callee_family =
      session.streams.empty() || session.streams[0].callee_addresses->bind.is_v4() ? 4 : 6;
  const size_t attached_before = session.streams.size();
  // New streams take the caller's family from the new SDP.
  if (absl::Status s = GrowStreams(session, request.session(),
                                   std::max<uint32_t>(request.stream_count(), session.streams.size()), callee_family, now);
      !s.ok()) {
    // All or nothing: streams added before the failure were never handed to the engine.
    for (size_t i = attached_before; i < session.streams.size(); ++i) {
      pool_.Release(session.streams[i].relay->caller.rtp_port, now);
      pool_.Release(session.streams[i].relay->callee.rtp_port, now);
    }
    session.streams.resize(attached_before);
    return s;
  }
  Describe(session, request.session());
  if (version != 0) session.version = version;
  SyncEngine(session, request.session(), attached_before);
  v1::UpdateRelaySessionResponse response;
  FillEndpoints(session, request.session(), response.mutable_caller(), response.mutable_callee());
  return response;
}

absl::StatusOr<v1::DeleteRelaySessionResponse> SessionTable::Delete(const std::string& session_id, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return absl::NotFoundError(absl::StrCat("session_id: no relay session \"", session_id, "\""));
  v1::DeleteRelaySessionResponse response;
  FillStats(*it->second, response.mutable_caller(), response.mutable_callee());
  ReleaseStreams(*it->second, now);
  sessions_.erase(it);
  return response;
}

absl::StatusOr<v1::GetRelaySessionResponse> SessionTable::Get(const std::string& session_id) const {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) return absl::NotFoundError(absl::StrCat("session_id: no relay session \"", session_id, "\""));
  v1::GetRelaySessionResponse response;
  *response.mutable_created_at() = ToProto(it->second->created_at);
  FillStats(*it->second, response.mutable_caller(), response.mutable_callee());
  return response;
}

std::vector<v1::Session> SessionTable::Snapshot() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Session> out;
  out.reserve(sessions_.size());
  for (const auto& [id, session] : sessions_) out.emplace_back().ParseFromString(session->record);
  return out;
}

v1::WorkerLoad SessionTable::Load(absl::Time now) {
  absl::MutexLock lock(&mu_);
  v1::WorkerLoad load;
  load.set_sessions(static_cast<uint32_t>(sessions_.size()));
  load.set_max_sessions(options_.max_sessions);
  load.set_free_ports(pool_.FreePairs(now) * 2);
  load.set_total_ports(pool_.TotalPairs() * 2);
  return load;
}

void SessionTable::SetAdvertised(size_t index, const net::IpAddress& ip) {
  absl::MutexLock lock(&mu_);
  if (index >= options_.addresses.size()) return;
  options_.addresses[index].advertised = ip;
  if (std::find(addressing_.own_ips.begin(), addressing_.own_ips.end(), ip) == addressing_.own_ips.end()) {
    addressing_.own_ips.push_back(ip);
  }
}

void SessionTable::SetDraining(bool draining) {
  absl::MutexLock lock(&mu_);
  draining_ = draining;
}

bool SessionTable::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

size_t SessionTable::CountOneWay(absl::Time now, absl::Duration grace) const {
  absl::MutexLock lock(&mu_);
  size_t one_way = 0;
  for (const auto& [id, session] : sessions_) {
    if (now - session->answered_at < grace) continue;
    uint64_t from_caller = 0, from_callee = 0;
    for (const Stream& stream : session->streams) {
      from_caller += PacketsIn(stream.relay->caller);
      from_callee += PacketsIn(stream.relay->callee);
    }
    if ((from_caller == 0) != (from_callee == 0)) ++one_way;
  }
  return one_way;
}

size_t SessionTable::size() const {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

}  // namespace latchkey::relay
