#pragma once
// One packet thread: owns the streams of its sessions and decides each datagram's fate (latch,
// loop check, stats, destination); its PacketIo (epoll or io_uring) moves the datagrams. The hot
// path allocates nothing and takes no lock; changes (attach, reconfigure, detach) arrive as closures
// through a queue and an eventfd.
#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "media-relay/engine/engine_counters.h"
#include "media-relay/engine/engine_events.h"
#include "media-relay/engine/kernel_flows.h"
#include "media-relay/engine/packet_io.h"
#include "media-relay/engine/relay_stream.h"
#include "media-relay/latching/relay_ranges.h"

namespace latchkey::relay {

class EngineThread {
 public:
  // `fast_path` may be null (off); it must outlive the thread.
  EngineThread(int index, EngineEventSink* sink, PacketIoMode io_mode, FastPath* fast_path = nullptr);
  ~EngineThread();

  // Fails if the requested packet I/O is unavailable (kAuto falls back to epoll instead).
  absl::Status Start();
  void Stop();
  // Runs `fn` on the packet thread, between batches.
  void Post(std::function<void()> fn);
  // "epoll" or "io_uring" once started.
  const char* io_name() const { return io_ ? io_->name() : "none"; }

  // Packet thread only (from posted closures).
  void Attach(std::shared_ptr<RelayStream> stream, const LegTarget& caller, const LegTarget& callee, absl::Time now);
  void Configure(RelayStream& stream, const LegTarget& caller, const LegTarget& callee, absl::Time now);
  void Detach(RelayStream* stream);
  void SetRelayRanges(std::shared_ptr<const RelayRanges> ranges) { relay_ranges_ = std::move(ranges); }

  // Packet thread only, from its PacketIo: the fate of one datagram that arrived on `tag`'s socket.
  // Returns the socket to send it from (one of tag.out's), with `to` / `to_length` set, or -1 when it
  // was refused (and counted).
  int Route(SocketTag& tag, const uint8_t* data, size_t length, const sockaddr_storage& from, bool truncated,
            absl::Time now, sockaddr_storage& to, socklen_t& to_length);
  void CountSent(RelayLeg& out, size_t bytes) {
    EngineCounters::Add(out.packets_out);
    EngineCounters::Add(out.bytes_out, bytes);
    EngineCounters::Add(counters_.packets_out);
    EngineCounters::Add(counters_.bytes_out, bytes);
  }

  EngineCounters& counters() { return counters_; }

 private:
  absl::Status CreateIo();
  void Run();
  void RunPosted();
  void OnLatchEvent(SocketTag& tag, LatchEvent event, const net::SocketAddress& source, absl::Time now);
  void OnContest(SocketTag& tag, const net::SocketAddress& contender, absl::Time now);
  void CheckTimeouts(absl::Time now);
  void Refuse(RelayLeg& leg, DropReason reason);

  const int index_;
  EngineEventSink* sink_;
  const PacketIoMode io_mode_;
  EngineCounters counters_;
  KernelFlows kernel_flows_;  // packet thread only
  int wake_fd_ = -1;
  std::unique_ptr<PacketIo> io_;
  std::thread thread_;
  std::atomic<bool> running_{false};

  absl::Mutex mu_;
  std::vector<std::function<void()>> posted_ ABSL_GUARDED_BY(mu_);

  // Packet thread only.
  absl::flat_hash_map<RelayStream*, std::shared_ptr<RelayStream>> streams_;
  std::shared_ptr<const RelayRanges> relay_ranges_;
  absl::Time next_timeout_check_ = absl::InfinitePast();
  static constexpr int kMaxContestReports = 20;
  absl::Time contest_window_start_ = absl::InfinitePast();
  int contest_reports_ = 0;
};

}  // namespace latchkey::relay
