#include "media-relay/engine/uring_io.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "media-relay/engine/engine_thread.h"

namespace latchkey::relay {
namespace {

// A request's user_data: what it is in the low bits, a SocketTag pointer (8-byte aligned) or a
// buffer id above them.
enum Op : uint64_t { kWake = 1, kReceive = 2, kSend = 3, kCancel = 4, kSelfTest = 5 };
constexpr uint64_t kOpMask = 7;
constexpr int kOpBits = 3;

absl::Status Errno(const char* what, int error) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(error)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PacketIo>> UringIo::Create(EngineThread& thread, int wake_fd) {
  std::unique_ptr<UringIo> io(new UringIo(thread, wake_fd));
  if (absl::Status s = io->Init(); !s.ok()) return s;
  if (absl::Status s = io->SelfTest(); !s.ok()) return s;
  io->ArmWake();
  return io;
}

absl::Status UringIo::Init() {
  io_uring_params params{};
  // One thread submits and reaps, and completions are processed only when it asks for them (6.1+).
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  params.cq_entries = kCompletions;
  int rc = io_uring_queue_init_params(kSubmissions, &ring_, &params);
  if (rc == -EINVAL) {  // a kernel before 6.1
    params = {};
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = kCompletions;
    rc = io_uring_queue_init_params(kSubmissions, &ring_, &params);
  }
  if (rc < 0) return Errno("io_uring_setup", -rc);
  ring_ready_ = true;
  if (!(params.features & IORING_FEAT_EXT_ARG) || !(params.features & IORING_FEAT_NODROP)) {
    return absl::UnavailableError("io_uring: the kernel lacks EXT_ARG or NODROP (Linux 5.11+)");
  }

  // Touched now (MAP_POPULATE): fixed per-thread memory, not something that grows with traffic.
  void* memory = ::mmap(nullptr, kBuffers * kBufferSize, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (memory == MAP_FAILED) return Errno("mmap", errno);
  buffers_ = static_cast<uint8_t*>(memory);
  void* ring_memory = ::mmap(nullptr, kBuffers * sizeof(io_uring_buf), PROT_READ | PROT_WRITE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (ring_memory == MAP_FAILED) return Errno("mmap", errno);
  buffer_ring_ = static_cast<io_uring_buf_ring*>(ring_memory);
  io_uring_buf_ring_init(buffer_ring_);
  io_uring_buf_reg registration{};
  registration.ring_addr = reinterpret_cast<uint64_t>(buffer_ring_);
  registration.ring_entries = kBuffers;
  registration.bgid = kBufferGroup;
  if (int r = io_uring_register_buf_ring(&ring_, &registration, 0); r < 0) {
    return Errno("io_uring_register_buf_ring (Linux 5.19+)", -r);
  }
  for (unsigned id = 0; id < kBuffers; ++id) ReturnBuffer(id);
  io_uring_buf_ring_advance(buffer_ring_, buffers_returned_);
  buffers_returned_ = 0;

  recv_layout_.msg_namelen = sizeof(sockaddr_in6);
  slots_.resize(kBuffers);
  for (SendSlot& slot : slots_) {
    slot.msg.msg_name = &slot.to;
    slot.msg.msg_iov = &slot.iov;
    slot.msg.msg_iovlen = 1;
  }
  return absl::OkStatus();
}

UringIo::~UringIo() {
  // Cancels every pending request first: nothing may still point at the buffers or the streams.
  if (ring_ready_) io_uring_queue_exit(&ring_);
  if (buffers_) ::munmap(buffers_, kBuffers * kBufferSize);
  if (buffer_ring_) ::munmap(buffer_ring_, kBuffers * sizeof(io_uring_buf));
}

// One datagram through a multishot receive on a loopback socket, then cancelled.
absl::Status UringIo::SelfTest() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket", errno);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  absl::Status status = absl::OkStatus();
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    status = Errno("self-test socket", errno);
  }
  if (status.ok()) {
    io_uring_sqe* sqe = NextSqe();
    io_uring_prep_recvmsg_multishot(sqe, fd, &recv_layout_, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = kBufferGroup;
    io_uring_sqe_set_data64(sqe, kSelfTest);
    io_uring_submit(&ring_);
    const char probe[] = "latchkey io_uring self-test";
    (void)!::sendto(fd, probe, sizeof(probe), 0, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    __kernel_timespec wait{.tv_sec = 1, .tv_nsec = 0};
    io_uring_cqe* cqe = nullptr;
    const int rc = io_uring_wait_cqe_timeout(&ring_, &cqe, &wait);
    if (rc < 0) {
      status = Errno("io_uring self-test", -rc);
    } else if (cqe->res < 0) {
      status = Errno("io_uring multishot recvmsg (Linux 6.0+)", -cqe->res);
    } else if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
      status = absl::UnavailableError("io_uring self-test: no provided buffer used");
    } else {
      auto* out = io_uring_recvmsg_validate(Buffer(cqe->flags >> IORING_CQE_BUFFER_SHIFT), cqe->res, &recv_layout_);
      if (!out || io_uring_recvmsg_payload_length(out, cqe->res, &recv_layout_) != sizeof(probe)) {
        status = absl::UnavailableError("io_uring self-test: datagram garbled");
      }
    }
    if (rc == 0) {
      if (cqe->flags & IORING_CQE_F_BUFFER) ReturnBuffer(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
      io_uring_cqe_seen(&ring_, cqe);
    }
    // Cancel it and wait (bounded) for its last completion, so the socket can close.
    sqe = NextSqe();
    io_uring_prep_cancel64(sqe, kSelfTest, 0);
    io_uring_sqe_set_data64(sqe, kCancel);
    io_uring_submit(&ring_);
    for (int i = 0; i < 4; ++i) {
      if (io_uring_wait_cqe_timeout(&ring_, &cqe, &wait) != 0) break;
      const bool done = cqe->user_data == kSelfTest && !(cqe->flags & IORING_CQE_F_MORE);
      if (cqe->flags & IORING_CQE_F_BUFFER) ReturnBuffer(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
      io_uring_cqe_seen(&ring_, cqe);
      if (done) break;
    }
    io_uring_buf_ring_advance(buffer_ring_, buffers_returned_);
    buffers_returned_ = 0;
  }
  ::close(fd);
  return status;
}

io_uring_sqe* UringIo::NextSqe() {
  for (int attempt = 0; attempt < 4; ++attempt) {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
    // The submission queue is full: hand it to the kernel, which empties it.
    io_uring_submit(&ring_);
  }
  return nullptr;  // the kernel refuses submissions (out of memory): callers retry next round or drop
}

void UringIo::ArmWake() {
  io_uring_sqe* sqe = NextSqe();
  wake_armed_ = sqe != nullptr;
  if (!wake_armed_) return;
  io_uring_prep_poll_multishot(sqe, wake_fd_, POLLIN);
  io_uring_sqe_set_data64(sqe, kWake);
}

void UringIo::ArmReceive(SocketTag& tag) {
  io_uring_sqe* sqe = NextSqe();
  if (sqe == nullptr) {
    rearm_.push_back(&tag);
    return;
  }
  io_uring_prep_recvmsg_multishot(sqe, tag.fd(), &recv_layout_, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = kBufferGroup;
  io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(&tag) | kReceive);
  tag.armed = true;
}

void UringIo::Watch(RelayStream& stream) {
  for (SocketTag& tag : stream.tags) ArmReceive(tag);
}

void UringIo::Unwatch(std::shared_ptr<RelayStream> stream) {
  RelayStream& s = *stream;
  s.retiring = true;
  for (SocketTag& tag : s.tags) Cancel(tag);
  retiring_.emplace(&s, std::move(stream));
  ReleaseIfIdle(s);
}

void UringIo::Cancel(SocketTag& tag) {
  if (!tag.armed) return;
  io_uring_sqe* sqe = NextSqe();
  if (sqe == nullptr) {
    uncancelled_.push_back(&tag);
    return;
  }
  io_uring_prep_cancel64(sqe, reinterpret_cast<uint64_t>(&tag) | kReceive, 0);
  io_uring_sqe_set_data64(sqe, kCancel);
}

void UringIo::ReleaseIfIdle(RelayStream& stream) {
  if (stream.inflight_sends > 0) return;
  for (const SocketTag& tag : stream.tags) {
    if (tag.armed) return;
  }
  retiring_.erase(&stream);  // may close its sockets
}

void UringIo::ReturnBuffer(unsigned id) {
  io_uring_buf_ring_add(buffer_ring_, Buffer(id), kBufferSize, id, io_uring_buf_ring_mask(kBuffers),
                        buffers_returned_++);
}

bool UringIo::RunOnce(absl::Duration timeout) {
  __kernel_timespec wait{};
  wait.tv_sec = absl::ToInt64Seconds(timeout);
  wait.tv_nsec = absl::ToInt64Nanoseconds(timeout - absl::Seconds(wait.tv_sec));
  io_uring_cqe* first = nullptr;
  // Submits the last round's sends and re-arms, then waits for one completion at least.
  io_uring_submit_and_wait_timeout(&ring_, &first, 1, &wait, nullptr);
  const absl::Time now = absl::Now();
  bool woken = false;
  bool received = false;
  unsigned head;
  unsigned seen = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ++seen;
    switch (cqe->user_data & kOpMask) {
      case kReceive:
        received = true;
        OnReceive(*cqe, now);
        break;
      case kSend:
        OnSent(*cqe);
        break;
      case kWake:
        woken = true;
        if (!(cqe->flags & IORING_CQE_F_MORE)) ArmWake();
        break;
      default:  // cancellations, a late self-test completion
        if (cqe->flags & IORING_CQE_F_BUFFER) ReturnBuffer(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        break;
    }
  }
  io_uring_cq_advance(&ring_, seen);
  if (received) EngineCounters::Add(thread_.counters().recv_batches);
  // Buffers first: a receive that stopped for lack of them is re-armed next.
  if (buffers_returned_ > 0) {
    io_uring_buf_ring_advance(buffer_ring_, buffers_returned_);
    buffers_returned_ = 0;
  }
  // By index: a retry that fails again is appended, for the next round (the lists keep their capacity).
  const size_t rearm_count = rearm_.size();
  for (size_t i = 0; i < rearm_count; ++i) {
    if (!rearm_[i]->armed && !rearm_[i]->stream->retiring) ArmReceive(*rearm_[i]);
  }
  rearm_.erase(rearm_.begin(), rearm_.begin() + rearm_count);
  const size_t cancel_count = uncancelled_.size();
  for (size_t i = 0; i < cancel_count; ++i) Cancel(*uncancelled_[i]);
  uncancelled_.erase(uncancelled_.begin(), uncancelled_.begin() + cancel_count);
  if (!wake_armed_) ArmWake();
  return woken;
}

void UringIo::OnReceive(const io_uring_cqe& cqe, absl::Time now) {
  SocketTag& tag = *reinterpret_cast<SocketTag*>(cqe.user_data & ~kOpMask);
  RelayStream& stream = *tag.stream;
  const bool more = cqe.flags & IORING_CQE_F_MORE;
  if (!more) tag.armed = false;
  if (cqe.flags & IORING_CQE_F_BUFFER) {
    const unsigned id = cqe.flags >> IORING_CQE_BUFFER_SHIFT;
    int fd = -1;
    SendSlot& slot = slots_[id];
    if (cqe.res >= 0 && !stream.retiring) {
      // A datagram whose header did not fit the buffer goes to the router as truncated (malformed).
      sockaddr_storage from{};
      uint8_t* payload = nullptr;
      size_t length = 0;
      bool truncated = true;
      if (io_uring_recvmsg_out* out = io_uring_recvmsg_validate(Buffer(id), cqe.res, &recv_layout_)) {
        std::memcpy(&from, io_uring_recvmsg_name(out), std::min<size_t>(out->namelen, recv_layout_.msg_namelen));
        payload = static_cast<uint8_t*>(io_uring_recvmsg_payload(out, &recv_layout_));
        length = io_uring_recvmsg_payload_length(out, cqe.res, &recv_layout_);
        truncated = out->flags & MSG_TRUNC;
      }
      socklen_t to_length = 0;
      fd = thread_.Route(tag, payload, length, from, truncated, now, slot.to, to_length);
      slot.msg.msg_namelen = to_length;
      slot.iov = {payload, length};
    }
    io_uring_sqe* sqe = fd < 0 ? nullptr : NextSqe();
    if (sqe == nullptr) {
      if (fd >= 0) thread_.counters().Dropped(DropReason::kSendError);  // no room to send it
      ReturnBuffer(id);
    } else {
      slot.out = tag.out;
      slot.stream = &stream;
      ++stream.inflight_sends;
      // MSG_DONTWAIT: a full socket buffer fails the send (counted) instead of parking it.
      io_uring_prep_sendmsg(sqe, fd, &slot.msg, MSG_DONTWAIT);
      io_uring_sqe_set_data64(sqe, (static_cast<uint64_t>(id) << kOpBits) | kSend);
    }
  }
  if (!more) {
    // Ended: cancelled (a detach), out of buffers, or an error; all but the first re-arm.
    if (stream.retiring) {
      ReleaseIfIdle(stream);
    } else if (cqe.res != -ECANCELED) {
      rearm_.push_back(&tag);
    }
  }
}

void UringIo::OnSent(const io_uring_cqe& cqe) {
  const unsigned id = static_cast<unsigned>(cqe.user_data >> kOpBits);
  SendSlot& slot = slots_[id];
  if (cqe.res < 0) {
    thread_.counters().Dropped(DropReason::kSendError);
  } else {
    thread_.CountSent(*slot.out, static_cast<size_t>(cqe.res));
  }
  ReturnBuffer(id);
  RelayStream& stream = *slot.stream;
  --stream.inflight_sends;
  if (stream.retiring) ReleaseIfIdle(stream);
}

}  // namespace latchkey::relay
