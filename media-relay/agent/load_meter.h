#pragma once
// Rates for heartbeats: packets per second through the engine and the process's CPU use, each over
// the time since the previous sample.
#include <cstdint>

#include "absl/time/time.h"
#include "media-relay/engine/packet_engine.h"

namespace latchkey::relay {

class LoadMeter {
 public:
  explicit LoadMeter(const PacketEngine* engine) : engine_(engine) {}

  struct Sample {
    double packets_per_second = 0;
    double cpu = 0;  // CPU seconds per second, per packet thread (0..1 when the threads are busy)
  };
  // Not thread-safe: one caller (the control client's loop).
  Sample Take(absl::Time now);

 private:
  const PacketEngine* engine_;
  absl::Time last_ = absl::InfinitePast();
  uint64_t last_packets_ = 0;
  double last_cpu_seconds_ = 0;
};

}  // namespace latchkey::relay
