#include "media-relay/engine/engine_thread.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "media-relay/packet/rtp_header.h"

namespace latchkey::relay {
namespace {

constexpr absl::Duration kTimeoutCheckInterval = absl::Seconds(1);
constexpr int kEpollTimeoutMs = 200;

void Add(std::atomic<uint64_t>& counter, uint64_t n = 1) { EngineCounters::Add(counter, n); }

}  // namespace

EngineThread::EngineThread(int index, EngineEventSink* sink) : index_(index), sink_(sink) {
  for (int i = 0; i < kBatch; ++i) {
    recv_iov_[i] = {buffers_[i].data(), kMaxPacket};
    recv_[i].msg_hdr.msg_iov = &recv_iov_[i];
    recv_[i].msg_hdr.msg_iovlen = 1;
    recv_[i].msg_hdr.msg_name = &recv_from_[i];
    send_rtp_[i].msg_hdr.msg_iov = &send_rtp_iov_[i];
    send_rtp_[i].msg_hdr.msg_iovlen = 1;
    send_rtp_[i].msg_hdr.msg_name = &send_rtp_to_[i];
    send_rtcp_[i].msg_hdr.msg_iov = &send_rtcp_iov_[i];
    send_rtcp_[i].msg_hdr.msg_iovlen = 1;
    send_rtcp_[i].msg_hdr.msg_name = &send_rtcp_to_[i];
  }
}

EngineThread::~EngineThread() {
  Stop();
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

absl::Status EngineThread::Start() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) return absl::InternalError(absl::StrCat("epoll/eventfd: ", std::strerror(errno)));
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.ptr = nullptr;  // the wake-up fd
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event) != 0) {
    return absl::InternalError(absl::StrCat("epoll_ctl: ", std::strerror(errno)));
  }
  running_ = true;
  thread_ = std::thread([this] { Run(); });
  // Named, so `top -H` and perf show which packet thread is busy.
  const std::string name = absl::StrCat("lk-packets-", index_);
  pthread_setname_np(thread_.native_handle(), name.c_str());
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
  const int fds[4] = {s.caller.rtp.fd(), s.caller.rtcp.fd(), s.callee.rtp.fd(), s.callee.rtcp.fd()};
  for (int i = 0; i < 4; ++i) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = &s.tags[i];
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fds[i], &event) != 0) {
      log::LogError("epoll_ctl add failed").Kv("session_id", s.session_id).Kv("error", std::strerror(errno));
    }
  }
  Configure(s, caller, callee, now);
  if (s.activity->last_packet == absl::InfinitePast()) s.activity->last_packet = now;
  streams_.emplace(&s, std::move(stream));
}

void EngineThread::Configure(RelayStream& s, const LegTarget& caller, const LegTarget& callee, absl::Time now) {
  for (auto [leg, target] : {std::pair{&s.caller, &caller}, std::pair{&s.callee, &callee}}) {
    leg->latch.Configure(target->policy, target->target, now);
    leg->rtcp_mux = target->rtcp_mux;
    leg->sdp_rtcp = target->sdp_rtcp;
    leg->rtcp_source.reset();
  }
  // Signalling is activity: a re-INVITE restarts the media clock.
  s.activity->last_packet = now;
  s.activity->timeout_reported = false;
}

void EngineThread::Detach(RelayStream* stream) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  for (int fd : {stream->caller.rtp.fd(), stream->caller.rtcp.fd(), stream->callee.rtp.fd(), stream->callee.rtcp.fd()}) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  }
  streams_.erase(it);  // the sockets close when the session table lets go too
}

void EngineThread::Run() {
  std::array<epoll_event, 64> events;
  while (running_.load(std::memory_order_relaxed)) {
    const int n = ::epoll_wait(epoll_fd_, events.data(), events.size(), kEpollTimeoutMs);
    const absl::Time now = absl::Now();
    bool woken = false;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        woken = true;
        continue;
      }
      HandleReadable(*static_cast<SocketTag*>(events[i].data.ptr), now);
    }
    // Only after the batch: a closure may detach a stream that a later event of this batch points at.
    if (woken) RunPosted();
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

void EngineThread::Send(int fd, mmsghdr* messages, int count, RelayLeg& out) {
  int sent_total = 0;
  while (sent_total < count) {
    const int sent = ::sendmmsg(fd, messages + sent_total, count - sent_total, MSG_DONTWAIT);
    if (sent <= 0) {
      // The kernel refused the next one (buffer full, ICMP unreachable): drop it, keep the rest.
      counters_.Dropped(DropReason::kSendError);
      ++sent_total;
      continue;
    }
    for (int i = sent_total; i < sent_total + sent; ++i) {
      Add(out.packets_out);
      Add(out.bytes_out, messages[i].msg_len);
      Add(counters_.packets_out);
      Add(counters_.bytes_out, messages[i].msg_len);
    }
    sent_total += sent;
  }
}

void EngineThread::OnLatchEvent(SocketTag& tag, LatchEvent event, const net::SocketAddress& source, absl::Time now) {
  RelayLeg& in = *tag.in;
  const bool relatched = event == LatchEvent::kRelatched;
  Add(relatched ? counters_.relatches : counters_.latches);
  {
    absl::MutexLock lock(&in.snapshot_mu);
    in.snapshot.latched_source = source;
    in.snapshot.latched_at = now;
    in.snapshot.relatch_count = in.latch.relatch_count();
    in.snapshot.ssrc = in.latch.latched_ssrc();
  }
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

void EngineThread::HandleReadable(SocketTag& tag, absl::Time now) {
  RelayLeg& in = *tag.in;
  RelayLeg& out = *tag.out;
  const int fd = tag.rtcp ? in.rtcp.fd() : in.rtp.fd();
  for (int round = 0; round < kMaxRoundsPerWakeup; ++round) {
    for (int i = 0; i < kBatch; ++i) {
      recv_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      recv_[i].msg_hdr.msg_flags = 0;
    }
    const int received = ::recvmmsg(fd, recv_.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (received <= 0) return;
    Add(counters_.recv_batches);
    int rtp_out = 0, rtcp_out = 0;
    for (int i = 0; i < received; ++i) {
      const uint8_t* data = buffers_[i].data();
      const size_t length = recv_[i].msg_len;
      Add(in.packets_in);
      Add(in.bytes_in, length);
      Add(counters_.packets_in);
      Add(counters_.bytes_in, length);
      auto source = net::SocketAddress::FromSockaddr(recv_from_[i]);
      if (!source.ok() || (recv_[i].msg_hdr.msg_flags & MSG_TRUNC)) {
        Refuse(in, DropReason::kMalformed);
        continue;
      }
      bool is_rtcp = false;
      switch (Classify(data, length)) {
        case PacketKind::kRtp: {
          auto rtp = ParseRtp(data, length);
          if (!rtp || tag.rtcp) {
            Refuse(in, DropReason::kMalformed);
            continue;
          }
          // Another relay's port (or our own) that signalling did not name: latching onto it could
          // close a loop between relays. Checked off the latched fast path.
          if (relay_ranges_ && !in.latch.IsLatchedSource(*source) && relay_ranges_->Contains(*source) &&
              !in.latch.IsExactSdp(*source)) {
            Refuse(in, DropReason::kLoop);
            continue;
          }
          const LatchDecision decision = in.latch.OnRtp(*source, *rtp, now);
          if (decision.event != LatchEvent::kNone) OnLatchEvent(tag, decision.event, *source, now);
          if (!decision.forward) {
            Refuse(in, decision.reason);
            continue;
          }
          in.stats.OnRtp(*rtp, now);
          break;
        }
        case PacketKind::kRtcp: {
          if (!ParseRtcp(data, length)) {
            Refuse(in, DropReason::kMalformed);
            continue;
          }
          if (!in.latch.OnRtcp(*source, now).forward) {
            Refuse(in, DropReason::kRtcpRefused);
            continue;
          }
          if (tag.rtcp) in.rtcp_source = *source;
          is_rtcp = true;
          break;
        }
        case PacketKind::kStun:
          Refuse(in, DropReason::kStun);
          continue;
        default:
          Refuse(in, DropReason::kMalformed);
          continue;
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
        continue;
      }
      const bool via_rtcp_socket = is_rtcp && !out.rtcp_mux;
      mmsghdr& message = via_rtcp_socket ? send_rtcp_[rtcp_out] : send_rtp_[rtp_out];
      sockaddr_storage& to = via_rtcp_socket ? send_rtcp_to_[rtcp_out] : send_rtp_to_[rtp_out];
      iovec& iov = via_rtcp_socket ? send_rtcp_iov_[rtcp_out] : send_rtp_iov_[rtp_out];
      socklen_t to_length = 0;
      to = destination->ip.ToSockaddr(destination->port, &to_length);
      message.msg_hdr.msg_namelen = to_length;
      iov.iov_base = buffers_[i].data();
      iov.iov_len = length;
      (via_rtcp_socket ? rtcp_out : rtp_out)++;
    }
    if (rtp_out > 0) Send(out.rtp.fd(), send_rtp_.data(), rtp_out, out);
    if (rtcp_out > 0) Send(out.rtcp.fd(), send_rtcp_.data(), rtcp_out, out);
    if (received < kBatch) return;
  }
}

void EngineThread::CheckTimeouts(absl::Time now) {
  for (auto& [raw, stream] : streams_) {
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
