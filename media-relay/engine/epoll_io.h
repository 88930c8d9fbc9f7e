#pragma once
// Packet I/O with epoll: per readable socket a recvmmsg batch, routed, then sendmmsg batches out of
// the other leg's RTP and RTCP sockets. Works everywhere (see packet_io.h for the cost).
#include <sys/socket.h>

#include <array>
#include <memory>

#include "absl/status/statusor.h"
#include "media-relay/engine/packet_io.h"

namespace latchkey::relay {

class EngineThread;

class EpollIo final : public PacketIo {
 public:
  static absl::StatusOr<std::unique_ptr<PacketIo>> Create(EngineThread& thread, int wake_fd);
  ~EpollIo() override;

  void Watch(RelayStream& stream) override;
  void Unwatch(std::shared_ptr<RelayStream> stream) override;
  bool RunOnce(absl::Duration timeout) override;
  const char* name() const override { return "epoll"; }

 private:
  static constexpr int kBatch = 32;
  static constexpr size_t kMaxPacket = 2048;  // larger datagrams are truncated and dropped
  static constexpr int kMaxRoundsPerWakeup = 4;

  explicit EpollIo(EngineThread& thread);
  void HandleReadable(SocketTag& tag, absl::Time now);
  void Send(int fd, mmsghdr* messages, int count, RelayLeg& out);

  EngineThread& thread_;
  int epoll_fd_ = -1;
  std::array<std::array<uint8_t, kMaxPacket>, kBatch> buffers_{};
  std::array<mmsghdr, kBatch> recv_{};
  std::array<iovec, kBatch> recv_iov_{};
  std::array<sockaddr_storage, kBatch> recv_from_{};
  // Two send batches per receive batch: the out leg's RTP and RTCP sockets.
  std::array<mmsghdr, kBatch> send_rtp_{}, send_rtcp_{};
  std::array<iovec, kBatch> send_rtp_iov_{}, send_rtcp_iov_{};
  std::array<sockaddr_storage, kBatch> send_rtp_to_{}, send_rtcp_to_{};
};

}  // namespace latchkey::relay
