#include "media-relay/engine/epoll_io.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "media-relay/engine/engine_thread.h"

namespace latchkey::relay {

absl::StatusOr<std::unique_ptr<PacketIo>> EpollIo::Create(EngineThread& thread, int wake_fd) {
  std::unique_ptr<EpollIo> io(new EpollIo(thread));
  io->epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (io->epoll_fd_ < 0) return absl::InternalError(absl::StrCat("epoll_create1: ", std::strerror(errno)));
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.ptr = nullptr;  // the wake-up fd
  if (::epoll_ctl(io->epoll_fd_, EPOLL_CTL_ADD, wake_fd, &event) != 0) {
    return absl::InternalError(absl::StrCat("epoll_ctl: ", std::strerror(errno)));
  }
  return io;
}

EpollIo::EpollIo(EngineThread& thread) : thread_(thread) {
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

EpollIo::~EpollIo() {
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

void EpollIo::Watch(RelayStream& stream) {
  for (SocketTag& tag : stream.tags) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.ptr = &tag;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, tag.fd(), &event) != 0) {
      log::LogError("epoll_ctl add failed").Kv("session_id", stream.session_id).Kv("error", std::strerror(errno));
    }
  }
}

void EpollIo::Unwatch(std::shared_ptr<RelayStream> stream) {
  for (SocketTag& tag : stream->tags) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, tag.fd(), nullptr);
}

bool EpollIo::RunOnce(absl::Duration timeout) {
  std::array<epoll_event, 64> events;
  const int n = ::epoll_wait(epoll_fd_, events.data(), events.size(), absl::ToInt64Milliseconds(timeout));
  const absl::Time now = absl::Now();
  bool woken = false;
  for (int i = 0; i < n; ++i) {
    if (events[i].data.ptr == nullptr) {
      woken = true;
      continue;
    }
    HandleReadable(*static_cast<SocketTag*>(events[i].data.ptr), now);
  }
  return woken;
}

void EpollIo::Send(int fd, mmsghdr* messages, int count, RelayLeg& out) {
  int sent_total = 0;
  while (sent_total < count) {
    const int sent = ::sendmmsg(fd, messages + sent_total, count - sent_total, MSG_DONTWAIT);
    if (sent <= 0) {
      // The kernel refused the next one (buffer full, ICMP unreachable): drop it, keep the rest.
      thread_.counters().Dropped(DropReason::kSendError);
      ++sent_total;
      continue;
    }
    for (int i = sent_total; i < sent_total + sent; ++i) thread_.CountSent(out, messages[i].msg_len);
    sent_total += sent;
  }
}

void EpollIo::HandleReadable(SocketTag& tag, absl::Time now) {
  const int fd = tag.fd();
  RelayLeg& out = *tag.out;
  for (int round = 0; round < kMaxRoundsPerWakeup; ++round) {
    for (int i = 0; i < kBatch; ++i) {
      recv_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      recv_[i].msg_hdr.msg_flags = 0;
    }
    const int received = ::recvmmsg(fd, recv_.data(), kBatch, MSG_DONTWAIT, nullptr);
    if (received <= 0) return;
    EngineCounters::Add(thread_.counters().recv_batches);
    int rtp_out = 0, rtcp_out = 0;
    for (int i = 0; i < received; ++i) {
      // The out leg's RTP socket or its RTCP socket; each has its batch.
      sockaddr_storage& rtp_to = send_rtp_to_[rtp_out];
      socklen_t to_length = 0;
      const int out_fd = thread_.Route(tag, buffers_[i].data(), recv_[i].msg_len, recv_from_[i],
                                       recv_[i].msg_hdr.msg_flags & MSG_TRUNC, now, rtp_to, to_length);
      if (out_fd < 0) continue;
      const bool via_rtcp_socket = out_fd != out.rtp.fd();
      if (via_rtcp_socket) send_rtcp_to_[rtcp_out] = rtp_to;
      mmsghdr& message = via_rtcp_socket ? send_rtcp_[rtcp_out] : send_rtp_[rtp_out];
      iovec& iov = via_rtcp_socket ? send_rtcp_iov_[rtcp_out] : send_rtp_iov_[rtp_out];
      message.msg_hdr.msg_namelen = to_length;
      iov.iov_base = buffers_[i].data();
      iov.iov_len = recv_[i].msg_len;
      (via_rtcp_socket ? rtcp_out : rtp_out)++;
    }
    if (rtp_out > 0) Send(out.rtp.fd(), send_rtp_.data(), rtp_out, out);
    if (rtcp_out > 0) Send(out.rtcp.fd(), send_rtcp_.data(), rtcp_out, out);
    if (received < kBatch) return;
  }
}

}  // namespace latchkey::relay
