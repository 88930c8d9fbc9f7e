#pragma once
// Packet I/O with io_uring (Linux 6.0+: multishot recvmsg, provided buffer rings). Every relay
// socket has one multishot receive pending; datagrams land in a ring of fixed buffers, and a packet
// the router accepts leaves as a sendmsg request straight from the buffer it arrived in, which goes
// back to the ring when the send completes. One io_uring_enter per round submits the round's sends
// and waits for the next, so a packet costs no system call of its own at any load.
//
// Container runtimes' default seccomp profiles refuse io_uring_setup: Create then fails (and the
// engine, in auto mode, uses epoll). Create also runs a one-datagram self-test on loopback, so a
// kernel without multishot receives is found at start, not with the first call.
#include <liburing.h>
#include <sys/socket.h>

#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "media-relay/engine/packet_io.h"

namespace latchkey::relay {

class EngineThread;

class UringIo final : public PacketIo {
 public:
  static absl::StatusOr<std::unique_ptr<PacketIo>> Create(EngineThread& thread, int wake_fd);
  ~UringIo() override;

  void Watch(RelayStream& stream) override;
  void Unwatch(std::shared_ptr<RelayStream> stream) override;
  bool RunOnce(absl::Duration timeout) override;
  const char* name() const override { return "io_uring"; }

 private:
  // 1024 x 2 KiB per thread, allocated and touched at start. When all are taken (a burst of more
  // than 1024 datagrams in one round) the receives stop and are re-armed once buffers come back;
  // the datagrams wait in their sockets meanwhile.
  static constexpr unsigned kBuffers = 1024;  // a power of two (buffer ring)
  static constexpr size_t kBufferSize = 2048;  // header, source address, datagram; larger ones are dropped
  static constexpr unsigned kSubmissions = 1024;
  static constexpr unsigned kCompletions = 8192;
  static constexpr int kBufferGroup = 0;

  // A forwarded datagram leaves from the buffer it arrived in: one send request per buffer.
  struct SendSlot {
    msghdr msg{};
    iovec iov{};
    sockaddr_storage to{};
    RelayLeg* out = nullptr;
    RelayStream* stream = nullptr;
  };

  UringIo(EngineThread& thread, int wake_fd) : thread_(thread), wake_fd_(wake_fd) {}
  absl::Status Init();
  absl::Status SelfTest();
  io_uring_sqe* NextSqe();
  void ArmReceive(SocketTag& tag);
  void ArmWake();
  void Cancel(SocketTag& tag);
  void OnReceive(const io_uring_cqe& cqe, absl::Time now);
  void OnSent(const io_uring_cqe& cqe);
  void ReturnBuffer(unsigned id);
  void ReleaseIfIdle(RelayStream& stream);
  uint8_t* Buffer(unsigned id) const { return buffers_ + id * kBufferSize; }

  EngineThread& thread_;
  const int wake_fd_;
  io_uring ring_{};
  bool ring_ready_ = false;
  io_uring_buf_ring* buffer_ring_ = nullptr;  // mmap'd, shared with the kernel
  uint8_t* buffers_ = nullptr;                // mmap'd
  msghdr recv_layout_{};                      // multishot receives: room for the source address only
  std::vector<SendSlot> slots_;
  int buffers_returned_ = 0;  // added to the ring since its tail was last advanced
  // Retried next round: receives that ended or could not be queued, cancels that could not be queued.
  std::vector<SocketTag*> rearm_;
  std::vector<SocketTag*> uncancelled_;
  bool wake_armed_ = false;
  absl::flat_hash_map<RelayStream*, std::shared_ptr<RelayStream>> retiring_;
};

}  // namespace latchkey::relay
