#pragma once
// RFC 3550 receiver statistics for the RTP one leg receives: packets, bytes, expected vs received
// (loss) with sequence wrap-around and resync (A.1, A.3), interarrival jitter (A.8) and late /
// duplicate packets. Updated by the leg's packet thread with no allocation; other threads (metrics,
// GetRelaySession) may read at any time and get a racy but well-defined snapshot: every value a
// reader sees is a relaxed atomic written only by the owner.
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "absl/time/time.h"
#include "media-relay/packet/rtp_header.h"

namespace latchkey::relay {

class StreamStats {
 public:
  static constexpr uint32_t kDefaultClockRate = 8000;

  // Owner thread only. `clock_rate` is the payload's RTP clock (0 is taken as the default). A new
  // SSRC starts a new sequence space; totals carry over.
  void OnRtp(const RtpHeader& rtp, absl::Time arrival, uint32_t clock_rate = kDefaultClockRate);
  // Owner thread only. The stream goes elsewhere for a while (the kernel fast path counts it
  // there): the next packet here starts a new sequence space, so the gap is not counted as loss.
  void NewSequenceSpace() { new_space_ = true; }

  // Any thread.
  uint64_t packets() const { return packets_.load(std::memory_order_relaxed); }
  // RTP header + payload bytes (padding excluded: it carries no media).
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  // Packets the sequence numbers say were sent (summed over SSRCs / resyncs).
  uint64_t Expected() const { return expected_.load(std::memory_order_relaxed); }
  // Expected minus received; negative with duplicates (RFC 3550 6.4.1).
  int64_t Lost() const { return lost_.load(std::memory_order_relaxed); }
  // Packets arriving at or behind the highest sequence so far (reordered or duplicated).
  uint64_t reordered() const { return reordered_.load(std::memory_order_relaxed); }
  // A.8 interarrival jitter converted to milliseconds at the last clock rate.
  double JitterMs() const;

 private:
  static constexpr uint32_t kMaxDropout = 3000;  // A.1: forward jump still taken as loss
  static constexpr uint32_t kMaxMisorder = 100;  // A.1: backward jump still taken as reordering

  void Restart(uint16_t seq);
  void Increment(std::atomic<uint64_t>& counter, uint64_t by) {
    counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }

  // Published to readers.
  std::atomic<uint64_t> packets_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> expected_{0};
  std::atomic<int64_t> lost_{0};
  std::atomic<uint64_t> reordered_{0};
  std::atomic<uint64_t> jitter16_{0};  // jitter in 1/16 timestamp units (A.8 integer form)
  std::atomic<uint32_t> clock_rate_{kDefaultClockRate};

  // Owner thread only.
  bool started_ = false;
  bool new_space_ = false;
  bool have_transit_ = false;
  uint16_t max_seq_ = 0;
  uint32_t ssrc_ = 0;
  uint32_t bad_seq_ = 0;         // A.1: a large jump is believed once the next packet follows it
  uint32_t transit_ = 0;         // A.8: arrival - timestamp of the previous packet, in clock units
  uint64_t cycles_ = 0;          // sequence wraps times 65536
  uint64_t base_seq_ = 0;
  uint64_t received_ = 0;        // in the current sequence space
  uint64_t expected_prior_ = 0;  // earlier sequence spaces (SSRC changes, resyncs)
  uint64_t received_prior_ = 0;
  int64_t origin_us_ = 0;        // first arrival: keeps arrival * clock_rate far from overflow
};

}  // namespace latchkey::relay
