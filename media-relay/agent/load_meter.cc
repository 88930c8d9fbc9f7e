#include "media-relay/agent/load_meter.h"

#include <sys/resource.h>

namespace latchkey::relay {
namespace {

double ProcessCpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

}  // namespace

LoadMeter::Sample LoadMeter::Take(absl::Time now) {
  uint64_t packets = 0;
  if (engine_) {
    for (int t = 0; t < engine_->thread_count(); ++t) {
      const EngineCounters& c = engine_->counters(t);
      packets += c.packets_in.load(std::memory_order_relaxed) + c.packets_out.load(std::memory_order_relaxed);
      packets += 2 * c.kernel_packets.load(std::memory_order_relaxed);  // in and out, by the fast path
    }
  }
  const double cpu_seconds = ProcessCpuSeconds();
  Sample sample;
  if (last_ != absl::InfinitePast() && now > last_) {
    const double elapsed = absl::ToDoubleSeconds(now - last_);
    const int threads = engine_ ? engine_->thread_count() : 1;
    sample.packets_per_second = static_cast<double>(packets - last_packets_) / elapsed;
    sample.cpu = (cpu_seconds - last_cpu_seconds_) / elapsed / threads;
  }
  last_ = now;
  last_packets_ = packets;
  last_cpu_seconds_ = cpu_seconds;
  return sample;
}

}  // namespace latchkey::relay
