#pragma once
// A packet thread's side of the kernel fast path: keeps the kernel's flow entries for its streams
// equal to what PlanFlow says after every latch event and signalling change, tells each latch what
// the kernel forwarded for its lock (rule 10 of latch.h) before it judges a handed-back packet,
// before a signalling change and once a second, and folds the kernel's counters into the legs'
// figures, the session's media clock and the thread's counters. Packet thread only; every kernel
// call is per event or per second, never per forwarded packet (a handed-back packet costs at most
// one counter read per kRefreshInterval and leg). With the fast path off every call returns at once.
#include <functional>
#include <vector>

#include "absl/time/time.h"
#include "media-relay/engine/engine_counters.h"
#include "media-relay/engine/relay_stream.h"
#include "media-relay/fastpath/fast_path.h"

namespace latchkey::relay {

class KernelFlows {
 public:
  // Called with the tag of the leg whose latch reported a contest while hearing of the kernel's
  // packets (the engine publishes it as for a contest on the socket path).
  using ContestSink = std::function<void(SocketTag& tag, absl::Time now)>;

  KernelFlows(FastPath* fast_path, EngineCounters& counters, ContestSink on_contest)
      : fast_path_(fast_path), counters_(counters), on_contest_(std::move(on_contest)) {}

  bool on() const { return fast_path_ != nullptr && fast_path_->on(); }

  // Both directions of `stream` as PlanFlow has them now (written, replaced or removed).
  void Sync(RelayStream& stream, absl::Time now);
  // Both directions removed, the latches told of the kernel's last packets first (a signalling
  // change is applied after this; Sync re-adds what still holds).
  void Remove(RelayStream& stream, absl::Time now);
  // Before the latch of `tag.in` judges a handed-back RTP packet from another source.
  void Refresh(SocketTag& tag, absl::Time now);
  // Once a second per stream: counters folded in, latches told, next hops refreshed (XDP).
  void Poll(RelayStream& stream, absl::Time now);
  // Once a second: entries the kernel refused to remove are tried again.
  void RetryRemovals();

  static constexpr absl::Duration kRefreshInterval = absl::Milliseconds(5);
  // XDP entries carry a next-hop MAC: re-resolved this often (a gateway or route change).
  static constexpr absl::Duration kReplanInterval = absl::Seconds(5);

 private:
  void SyncDirection(SocketTag& tag, absl::Time now, bool fresh_egress);
  void RemoveDirection(SocketTag& tag, absl::Time now);
  // Reads the entry's counters and folds what is new into the legs and the media clock; then tells
  // the latch if the lock's media moved on. A failed read folds nothing.
  void Fold(SocketTag& tag, absl::Time now);

  FastPath* fast_path_;
  EngineCounters& counters_;
  ContestSink on_contest_;
  std::vector<lk_flow_key> failed_removals_;
};

}  // namespace latchkey::relay
