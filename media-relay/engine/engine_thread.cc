#include "media-relay/engine/engine_thread.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "media-relay/engine/epoll_io.h"
#include "media-relay/engine/uring_io.h"
#include "media-relay/packet/rtp_header.h"

namespace latchkey::relay {
namespace {

constexpr absl::Duration kTimeoutCheckInterval = absl::Seconds(1);
// How long a packet thread sleeps without traffic or posted work (timeouts are checked after it).
constexpr absl::Duration kWaitLimit = absl::Milliseconds(200);

void Add(std::atomic<uint64_t>& counter, uint64_t n = 1) { EngineCounters::Add(counter, n); }

}  // namespace

EngineThread::EngineThread(int index, EngineEventSink* sink, PacketIoMode io_mode, FastPath* fast_path)
    : index_(index),
      sink_(sink),
      io_mode_(io_mode),
      kernel_flows_(fast_path, counters_, [this](SocketTag& tag, absl::Time now) {
        OnLatchEvent(tag, LatchEvent::kContested, tag.in->latch.contender(), now);
      }) {}

EngineThread::~EngineThread() {
  Stop();
  io_.reset();  // before the wake-up fd it may watch
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

absl::Status EngineThread::Start() {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  // The I/O is set up on the packet thread itself: an io_uring ring belongs to the thread that
  // created it (single issuer, deferred task work).
  absl::Notification ready;
  absl::Status io_status;
  running_ = true;
  thread_ = std::thread([this, &ready, &io_status] {
    absl::Status status = CreateIo();
    const bool ok = status.ok();
    io_status = std::move(status);
    ready.Notify();  // from here on Start() may have returned: its locals are gone
    if (ok) Run();
  });
  ready.WaitForNotification();
  if (!io_status.ok()) {
    running_ = false;
    thread_.join();
    return io_status;
  }
  // Named, so `top -H` and perf show which packet thread is busy.
  const std::string name = absl::StrCat("lk-packets-", index_);
  pthread_setname_np(thread_.native_handle(), name.c_str());
  return absl::OkStatus();
}

absl::Status EngineThread::CreateIo() {
  if (io_mode_ != PacketIoMode::kEpoll) {
    auto uring = UringIo::Create(*this, wake_fd_);
    if (uring.ok()) {
      io_ = *std::move(uring);
      return absl::OkStatus();
    }
    if (io_mode_ == PacketIoMode::kIoUring) return uring.status();
    if (index_ == 0) {
      log::LogInfo("io_uring unavailable, packet threads use epoll").Kv("reason", uring.status().message());
    }
  }
  auto epoll = EpollIo::Create(*this, wake_fd_);
  if (!epoll.ok()) return epoll.status();
  io_ = *std::move(epoll);
  return absl::OkStatus();
}

void EngineThread::Stop() {
  if (!running_.exchange(false)) return;
  Post([] {});
  if (thread_.joinable()) thread_.join();
  streams_.clear();
}

void EngineThread::Post(std::function<void()> fn) {
  {
    absl::MutexLock lock(&mu_);
    posted_.push_back(std::move(fn));
  }
  const uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof(one));
}

void EngineThread::RunPosted() {
  uint64_t drained;
  (void)!::read(wake_fd_, &drained, sizeof(drained));
  std::vector<std::function<void()>> work;
  {
    absl::MutexLock lock(&mu_);
    work.swap(posted_);
  }
  for (auto& fn : work) fn();
}

void EngineThread::Attach(std::shared_ptr<RelayStream> stream, const LegTarget& caller, const LegTarget& callee,
                          absl::Time now) {
  RelayStream& s = *stream;
  s.tags[0] = {&s, &s.caller, &s.callee, v1::SIDE_CALLER, false};
  s.tags[1] = {&s, &s.caller, &s.callee, v1::SIDE_CALLER, true};
  s.tags[2] = {&s, &s.callee, &s.caller, v1::SIDE_CALLEE, false};
  s.tags[3] = {&s, &s.callee, &s.caller, v1::SIDE_CALLEE, true};
  io_->Watch(s);
  Configure(s, caller, callee, now);
  if (s.activity->last_packet == absl::InfinitePast()) s.activity->last_packet = now;
  streams_.emplace(&s, std::move(stream));
}

void EngineThread::Configure(RelayStream& s, const LegTarget& caller, const LegTarget& callee, absl::Time now) {
  // The kernel stops forwarding before the new signalling applies; what still holds is re-added.
  kernel_flows_.Remove(s, now);
  for (auto [leg, target] : {std::pair{&s.caller, &caller}, std::pair{&s.callee, &callee}}) {
    LatchTarget latch_target = target->target;
    std::optional<net::SocketAddress> sdp_rtcp = target->sdp_rtcp;
    // A relay's port is no destination unless control chained the leg to that relay; our own never.
    if (relay_ranges_) {
      auto relay_port = [&](const std::optional<net::SocketAddress>& address) {
        if (!address) return false;
        const RelayRanges::Match match = relay_ranges_->Find(*address);
        return match == RelayRanges::Match::kOwn || (match == RelayRanges::Match::kPeer && !target->relay_chain);
      };
      if (relay_port(latch_target.sdp)) latch_target.sdp_sendable = false;
      if (relay_port(sdp_rtcp)) sdp_rtcp.reset();
    }
    leg->latch.Configure(target->policy, latch_target, now);
    leg->rtcp_mux = target->rtcp_mux;
    leg->relay_chain = target->relay_chain;
    leg->sdp_rtcp = sdp_rtcp;
    leg->rtcp_source.reset();
  }
  // Signalling is activity: a re-INVITE restarts the media clock.
  s.activity->last_packet = now;
  s.activity->timeout_reported = false;
  kernel_flows_.Sync(s, now);
}

void EngineThread::Detach(RelayStream* stream) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  kernel_flows_.Remove(*stream, absl::Now());
  io_->Unwatch(std::move(it->second));
  streams_.erase(it);  // the sockets close when the session table and the I/O let go too
}

void EngineThread::Run() {
  while (running_.load(std::memory_order_relaxed)) {
    // Posted closures run only between rounds: one may detach a stream a datagram of the round
    // points at.
    if (io_->RunOnce(kWaitLimit)) RunPosted();
    const absl::Time now = absl::Now();
    if (now >= next_timeout_check_) {
      CheckTimeouts(now);
      next_timeout_check_ = now + kTimeoutCheckInterval;
    }
  }
}

void EngineThread::Refuse(RelayLeg& leg, DropReason reason) {
  counters_.Dropped(reason);
  Add(leg.dropped);
}

void EngineThread::OnLatchEvent(SocketTag& tag, LatchEvent event, const net::SocketAddress& source, absl::Time now) {
  RelayLeg& in = *tag.in;
  if (event == LatchEvent::kContested) {
    OnContest(tag, in.latch.contender(), now);
    return;
  }
  const bool relatched = event == LatchEvent::kRelatched;
  Add(relatched ? counters_.relatches : counters_.latches);
  {
    absl::MutexLock lock(&in.snapshot_mu);
    in.snapshot.latched_source = source;
    in.snapshot.latched_at = now;
    in.snapshot.relatch_count = in.latch.relatch_count();
    in.snapshot.ssrc = in.latch.latched_ssrc();
  }
  kernel_flows_.Sync(*tag.stream, now);
  log::LogInfo(relatched ? "relatched" : "latched")
      .Kv("session_id", tag.stream->session_id)
      .Kv("stream", tag.stream->media_index)
      .Kv("side", tag.side == v1::SIDE_CALLER ? "caller" : "callee")
      .Kv("source", source.ToString());
  if (sink_) {
    sink_->OnEngineEvent({tag.stream->session_id, tag.side,
                          relatched ? v1::SESSION_EVENT_TYPE_RELATCHED : v1::SESSION_EVENT_TYPE_LATCHED, source, now});
  }
}

void EngineThread::OnContest(SocketTag& tag, const net::SocketAddress& contender, absl::Time now) {
  Add(counters_.contests);
  // Reported at most once per contender and leg by the latch; a spray over many legs is still
  // many events, so the packet thread reports at most kMaxContestReports per second to control.
  if (now - contest_window_start_ >= absl::Seconds(1)) {
    contest_window_start_ = now;
    contest_reports_ = 0;
  }
  if (++contest_reports_ > kMaxContestReports) {
    Add(counters_.contest_reports_suppressed);
    return;
  }
  log::LogInfo("latch contested")
      .Kv("session_id", tag.stream->session_id)
      .Kv("stream", tag.stream->media_index)
      .Kv("side", tag.side == v1::SIDE_CALLER ? "caller" : "callee")
      .Kv("contender", contender.ToString());
  if (sink_) {
    sink_->OnEngineEvent({tag.stream->session_id, tag.side, v1::SESSION_EVENT_TYPE_LATCH_CONTESTED, contender, now});
  }
}

int EngineThread::Route(SocketTag& tag, const uint8_t* data, size_t length, const sockaddr_storage& from,
                        bool truncated, absl::Time now, sockaddr_storage& to, socklen_t& to_length) {
  RelayLeg& in = *tag.in;
  RelayLeg& out = *tag.out;
  Add(in.packets_in);
  Add(in.bytes_in, length);
  Add(counters_.packets_in);
  Add(counters_.bytes_in, length);
  auto source = net::SocketAddress::FromSockaddr(from);
  if (!source.ok() || truncated) {
    Refuse(in, DropReason::kMalformed);
    return -1;
  }
  bool is_rtcp = false;
  switch (Classify(data, length)) {
    case PacketKind::kRtp: {
      auto rtp = ParseRtp(data, length);
      if (!rtp || tag.rtcp) {
        Refuse(in, DropReason::kMalformed);
        return -1;
      }
      // A relay's port: ours never (a loop inside this relay), another's only on a chained leg
      // whose SDP names it (else a loop between relays). Checked off the latched fast path.
      if (relay_ranges_ && !in.latch.IsLatchedSource(*source)) {
        const RelayRanges::Match match = relay_ranges_->Find(*source);
        if (match == RelayRanges::Match::kOwn ||
            (match == RelayRanges::Match::kPeer && !(in.relay_chain && in.latch.IsExactSdp(*source)))) {
          Refuse(in, DropReason::kLoop);
          return -1;
        }
      }
      // Handed back by the kernel fast path while it forwards the lock's media: the latch first
      // hears what the kernel forwarded (latch.h, rule 10).
      if (in.kernel_flow && !in.latch.IsLatchedSource(*source)) kernel_flows_.Refresh(tag, now);
      const LatchDecision decision = in.latch.OnRtp(*source, *rtp, now);
      if (decision.event != LatchEvent::kNone) OnLatchEvent(tag, decision.event, *source, now);
      if (!decision.forward) {
        Refuse(in, decision.reason);
        return -1;
      }
      in.stats.OnRtp(*rtp, now);
      // The lock's media back on the socket with another SSRC (a new stream after a re-INVITE or
      // music on hold): the kernel's entry follows, at most once a second per leg, so a spoofer
      // flipping SSRCs from the lock's address costs one map write a second, not one per packet.
      if (in.kernel_flow && in.latch.IsLatchedSource(*source) &&
          in.kernel_flow->value.ssrc != htonl(rtp->ssrc) && now - in.kernel_ssrc_synced >= absl::Seconds(1)) {
        in.kernel_ssrc_synced = now;
        kernel_flows_.Sync(*tag.stream, now);
      }
      break;
    }
    case PacketKind::kRtcp: {
      if (!ParseRtcp(data, length)) {
        Refuse(in, DropReason::kMalformed);
        return -1;
      }
      if (const LatchDecision decision = in.latch.OnRtcp(*source, now); !decision.forward) {
        Refuse(in, decision.reason);
        return -1;
      }
      if (tag.rtcp) in.rtcp_source = *source;
      is_rtcp = true;
      break;
    }
    case PacketKind::kStun:
      Refuse(in, DropReason::kStun);
      return -1;
    default:
      Refuse(in, DropReason::kMalformed);
      return -1;
  }
  tag.stream->activity->last_packet = now;

  std::optional<net::SocketAddress> destination;
  if (!is_rtcp || out.rtcp_mux) {
    destination = out.latch.Destination();
  } else {
    destination = out.rtcp_source ? out.rtcp_source : out.sdp_rtcp;
  }
  if (!destination) {
    Refuse(in, DropReason::kNoDestination);
    return -1;
  }
  // Before the other leg latched: only to a plausible endpoint, at a bounded rate; RTCP only to the
  // IP media goes to.
  const DropReason refusal = is_rtcp && !out.rtcp_mux ? out.latch.AdmitRtcpSend(*destination, now)
                                                      : out.latch.AdmitSend(now);
  if (refusal != DropReason::kNone) {
    Refuse(in, refusal);
    return -1;
  }
  to = destination->ip.ToSockaddr(destination->port, &to_length);
  return is_rtcp && !out.rtcp_mux ? out.rtcp.fd() : out.rtp.fd();
}

void EngineThread::CheckTimeouts(absl::Time now) {
  kernel_flows_.RetryRemovals();
  for (auto& [raw, stream] : streams_) {
    kernel_flows_.Poll(*stream, now);  // the kernel's packets count for the media clock too
    SessionActivity& activity = *stream->activity;
    // One stream per session reports (the first); the activity is shared by all of them.
    if (stream->media_index != 0) continue;
    if (now >= activity.timeouts.final_deadline && !activity.final_timeout_reported) {
      activity.final_timeout_reported = true;
      Add(counters_.final_timeouts);
      log::LogInfo("final timeout").Kv("session_id", stream->session_id);
      if (sink_) {
        sink_->OnEngineEvent({stream->session_id, v1::SIDE_UNSPECIFIED, v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT, {}, now});
      }
      continue;
    }
    if (activity.timeout_reported || activity.final_timeout_reported) continue;
    if (now - activity.last_packet < activity.timeouts.media) continue;
    activity.timeout_reported = true;
    Add(counters_.media_timeouts);
    log::LogInfo("media timeout")
        .Kv("session_id", stream->session_id)
        .Kv("silent_s", absl::ToInt64Seconds(now - activity.last_packet));
    if (sink_) sink_->OnEngineEvent({stream->session_id, v1::SIDE_UNSPECIFIED, v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT, {}, now});
  }
}

}  // namespace latchkey::relay
