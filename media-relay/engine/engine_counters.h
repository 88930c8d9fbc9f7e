#pragma once
// Counters of one packet thread. Written only by that thread (relaxed load+store, no locked
// instruction on the hot path), read by the metrics collector at scrape time.
#include <array>
#include <atomic>
#include <cstdint>

#include "media-relay/latching/latch.h"

namespace latchkey::relay {

struct alignas(64) EngineCounters {
  std::atomic<uint64_t> packets_in{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> packets_out{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> latches{0};
  std::atomic<uint64_t> relatches{0};
  std::atomic<uint64_t> contests{0};
  std::atomic<uint64_t> contest_reports_suppressed{0};
  std::atomic<uint64_t> media_timeouts{0};
  std::atomic<uint64_t> final_timeouts{0};
  std::atomic<uint64_t> recv_batches{0};
  // Kernel fast path: packets and bytes it forwarded (folded in every second), entries written
  // and removed, and writes the kernel refused.
  std::atomic<uint64_t> kernel_packets{0};
  std::atomic<uint64_t> kernel_bytes{0};
  std::atomic<uint64_t> kernel_flows_added{0};
  std::atomic<uint64_t> kernel_flows_removed{0};
  std::atomic<uint64_t> kernel_flow_errors{0};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(DropReason::kCount)> drops{};  // by DropReason

  // Single-writer increment: cheaper than fetch_add, still a well-defined read for other threads.
  static void Add(std::atomic<uint64_t>& counter, uint64_t n = 1) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void Dropped(DropReason reason) { Add(drops[static_cast<size_t>(reason)]); }
};

}  // namespace latchkey::relay
