#pragma once
// The packet threads. Each session belongs to one thread (by a hash of its id), so all its streams
// share that thread's caches and no packet ever needs a lock.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "media-relay/engine/engine_thread.h"

namespace latchkey::relay {

class PacketEngine {
 public:
  // `fast_path` may be null (off); it must outlive the engine.
  PacketEngine(int threads, EngineEventSink* sink, PacketIoMode io_mode = PacketIoMode::kAuto,
               FastPath* fast_path = nullptr);
  ~PacketEngine();

  absl::Status Start();
  void Stop();

  // Control path; each takes effect on the stream's packet thread shortly after.
  void Attach(std::shared_ptr<RelayStream> stream, LegTarget caller, LegTarget callee, SessionTimeouts timeouts);
  void Configure(std::shared_ptr<RelayStream> stream, LegTarget caller, LegTarget callee, SessionTimeouts timeouts);
  void Detach(std::shared_ptr<RelayStream> stream);
  // Runs `fn` on packet thread `thread` between rounds.
  void Post(int thread, std::function<void()> fn) { threads_[thread]->Post(std::move(fn)); }
  // The relays' media ranges (loop protection); replaces the previous set on every thread.
  void SetRelayRanges(std::shared_ptr<const RelayRanges> ranges);

  int thread_count() const { return static_cast<int>(threads_.size()); }
  const char* io_name() const { return threads_[0]->io_name(); }
  const EngineCounters& counters(int thread) const { return threads_[thread]->counters(); }
  // The kernel fast path in force ("xdp", "tc", "off").
  const char* fast_path_mode() const { return fast_path_ ? FastPathModeName(fast_path_->mode()) : "off"; }
  // Flow entries the kernel holds for this engine's streams.
  uint64_t kernel_flows() const {
    uint64_t added = 0, removed = 0;
    for (const auto& t : threads_) {
      added += t->counters().kernel_flows_added.load(std::memory_order_relaxed);
      removed += t->counters().kernel_flows_removed.load(std::memory_order_relaxed);
    }
    return added - removed;
  }

 private:
  EngineThread& ThreadFor(const std::string& session_id);
  FastPath* fast_path_ = nullptr;
  std::vector<std::unique_ptr<EngineThread>> threads_;
};

}  // namespace latchkey::relay
