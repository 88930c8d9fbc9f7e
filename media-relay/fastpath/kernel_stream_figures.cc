#include "media-relay/fastpath/kernel_stream_figures.h"

#include <algorithm>

namespace latchkey::relay {

KernelStreamFigures MergeKernelStream(absl::Span<const lk_stream_stats> per_cpu) {
  KernelStreamFigures out;
  bool any = false;
  uint32_t base = 0, highest = 0;
  uint64_t most_packets = 0;
  for (const lk_stream_stats& cpu : per_cpu) {
    if (!cpu.started) continue;
    out.packets += cpu.packets;
    out.bytes += cpu.bytes;
    if (!any || cpu.last_ns > out.last_ns) {
      out.last_ns = cpu.last_ns;
      out.last_seq = static_cast<uint16_t>(cpu.last_seq);
    }
    if (!any || cpu.packets > most_packets) {
      most_packets = cpu.packets;
      out.jitter16 = cpu.jitter16;
    }
    base = any ? std::min(base, cpu.base_seq_ext) : cpu.base_seq_ext;
    highest = any ? std::max(highest, cpu.max_seq_ext) : cpu.max_seq_ext;
    any = true;
  }
  if (any) out.expected = static_cast<uint64_t>(highest - base) + 1;
  return out;
}

}  // namespace latchkey::relay
