#pragma once
// A packet thread's side of the kernel fast path: keeps the kernel's flow entries for its streams
// equal to what PlanFlow says after every latch event and signalling change, tells each latch what
// the kernel forwarded for its lock (rule 10 of latch.h) before it judges a handed-back packet, and
// folds the kernel's counters into the legs' figures, the session's media clock and the thread's
// counters once a second. Packet thread only; every kernel call is per event or per second, never
// per forwarded packet. With the fast path off every call returns at once.
#include "absl/time/time.h"
#include "media-relay/engine/engine_counters.h"
#include "media-relay/engine/relay_stream.h"
#include "media-relay/fastpath/fast_path.h"

namespace latchkey::relay {

class KernelFlows {
 public:
  KernelFlows(FastPath* fast_path, EngineCounters& counters) : fast_path_(fast_path), counters_(counters) {}

  bool on() const { return fast_path_ != nullptr && fast_path_->on(); }

  // Both directions of `stream` as PlanFlow has them now (written, replaced or removed).
  void Sync(RelayStream& stream, absl::Time now);
  // Both directions removed (a signalling change is applied after this; Sync re-adds).
  void Remove(RelayStream& stream, absl::Time now);
  // Before the latch of `in` judges a handed-back RTP packet: what the kernel forwarded for the
  // lock since the last look (at most every kRefreshInterval, so a spray costs one look per
  // interval, not one per packet). Returns the latch's decision (a contest to report, or nothing).
  LatchDecision Refresh(RelayLeg& in, RelayLeg& out, RelayStream& stream, absl::Time now);
  // Once a second: folds every entry's counters in and retries next hops XDP could not resolve.
  void Poll(RelayStream& stream, absl::Time now);

  static constexpr absl::Duration kRefreshInterval = absl::Milliseconds(5);

 private:
  void SyncDirection(RelayLeg& in, RelayLeg& out, RelayStream& stream, absl::Time now);
  void RemoveDirection(RelayLeg& in, RelayLeg& out, RelayStream& stream, absl::Time now);
  // Reads the entry's counters and folds what is new into the legs; returns the reading.
  KernelStreamFigures Fold(RelayLeg& in, RelayLeg& out, RelayStream& stream, absl::Time now);

  FastPath* fast_path_;
  EngineCounters& counters_;
};

}  // namespace latchkey::relay
