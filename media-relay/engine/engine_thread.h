#pragma once
// One packet thread: an epoll loop over the sockets of the streams it owns. Receives in batches
// (recvmmsg), runs each packet through its leg's latch, and sends the accepted ones out of the other
// leg's socket in batches (sendmmsg). The hot path allocates nothing and takes no lock; changes
// (attach, reconfigure, detach) arrive as closures through a queue and an eventfd.
#include <sys/socket.h>

#include <array>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "media-relay/engine/engine_counters.h"
#include "media-relay/engine/engine_events.h"
#include "media-relay/engine/relay_stream.h"
#include "media-relay/latching/relay_ranges.h"

namespace latchkey::relay {

class EngineThread {
 public:
  EngineThread(int index, EngineEventSink* sink);
  ~EngineThread();

  absl::Status Start();
  void Stop();
  // Runs `fn` on the packet thread, between batches.
  void Post(std::function<void()> fn);

  // Packet thread only (from posted closures).
  void Attach(std::shared_ptr<RelayStream> stream, const LegTarget& caller, const LegTarget& callee, absl::Time now);
  void Configure(RelayStream& stream, const LegTarget& caller, const LegTarget& callee, absl::Time now);
  void Detach(RelayStream* stream);
  void SetRelayRanges(std::shared_ptr<const RelayRanges> ranges) { relay_ranges_ = std::move(ranges); }

  EngineCounters& counters() { return counters_; }

 private:
  static constexpr int kBatch = 32;
  static constexpr size_t kMaxPacket = 2048;  // larger datagrams are truncated and dropped
  static constexpr int kMaxRoundsPerWakeup = 4;

  void Run();
  void RunPosted();
  void HandleReadable(SocketTag& tag, absl::Time now);
  void OnLatchEvent(SocketTag& tag, LatchEvent event, const net::SocketAddress& source, absl::Time now);
  void CheckTimeouts(absl::Time now);
  void Refuse(RelayLeg& leg, DropReason reason);
  void Send(int fd, mmsghdr* messages, int count, RelayLeg& out);

  const int index_;
  EngineEventSink* sink_;
  EngineCounters counters_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> running_{false};

  absl::Mutex mu_;
  std::vector<std::function<void()>> posted_ ABSL_GUARDED_BY(mu_);

  // Packet thread only.
  absl::flat_hash_map<RelayStream*, std::shared_ptr<RelayStream>> streams_;
  std::shared_ptr<const RelayRanges> relay_ranges_;
  absl::Time next_timeout_check_ = absl::InfinitePast();
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
