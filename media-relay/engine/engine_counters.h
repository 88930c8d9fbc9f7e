#pragma once
// Counters of one packet thread. Written only by that thread (relaxed load+store, no locked
// instruction on the hot path), read by the metrics collector at scrape time.
#include <array>
#include <atomic>
#include <cstdint>

#include "media-relay/latching/latch.h"

namespace latchkey::relay {

// Why a received packet was not forwarded. Latch refusals map 1:1 onto the first entries.
enum class Drop : uint8_t {
  kWrongSource,     // the leg is latched to another source
  kProbation,       // source still proving itself (never forwarded)
  kTooFast,         // arrivals faster than a media stream: a flood
  kNotSignalingIp,  // SIGNALING_SOURCE mode, other IP
  kStrict,          // STRICT mode, not the SDP address
  kStale,           // old source shortly after a signalled change
  kMalformed,       // not RTP/RTCP/STUN
  kNoDestination,   // the other leg has no address to send to yet
  kSendError,       // the kernel refused the send (buffer full, unreachable)
  kStun,            // STUN on a media port (no ICE here): answered elsewhere, counted here
  kRtcpRefused,     // RTCP not from the latched source
  kCount
};
const char* DropName(Drop drop);

struct alignas(64) EngineCounters {
  std::atomic<uint64_t> packets_in{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> packets_out{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> latches{0};
  std::atomic<uint64_t> relatches{0};
  std::atomic<uint64_t> media_timeouts{0};
  std::atomic<uint64_t> final_timeouts{0};
  std::atomic<uint64_t> recv_batches{0};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(Drop::kCount)> drops{};

  // Single-writer increment: cheaper than fetch_add, still a well-defined read for other threads.
  static void Add(std::atomic<uint64_t>& counter, uint64_t n = 1) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void Dropped(Drop reason) { Add(drops[static_cast<size_t>(reason)]); }
};

}  // namespace latchkey::relay
