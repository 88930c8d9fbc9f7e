#pragma once
// One stream's counters as the fast path kept them, merged over CPUs. The program keeps them per
// CPU (no atomics on the hot path); one RX queue, hence mostly one CPU, carries a 5-tuple, so the
// merge sums what adds up and takes the rest from the CPU that saw the newest (or most) packets.
#include <cstdint>

#include "absl/types/span.h"
#include "media-relay/fastpath/fast_path_abi.h"

namespace latchkey::relay {

struct KernelStreamFigures {
  uint64_t packets = 0;
  uint64_t bytes = 0;
  uint64_t last_ns = 0;    // CLOCK_MONOTONIC of the newest packet; 0: none
  uint16_t last_seq = 0;   // its sequence number
  uint64_t expected = 0;   // RFC 3550 A.3: highest extended sequence - first + 1
  uint32_t jitter16 = 0;   // A.8, in 1/16 RTP timestamp units

  // A.3: expected minus received; negative with duplicates.
  int64_t lost() const { return static_cast<int64_t>(expected) - static_cast<int64_t>(packets); }
};

KernelStreamFigures MergeKernelStream(absl::Span<const lk_stream_stats> per_cpu);

}  // namespace latchkey::relay
