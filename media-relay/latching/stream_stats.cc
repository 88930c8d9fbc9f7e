#include "media-relay/latching/stream_stats.h"

#include <cmath>

namespace latchkey::relay {

void StreamStats::Restart(uint16_t seq) {
  // Close the current sequence space into the totals, then start counting afresh (A.1 init_seq).
  if (started_) {
    expected_prior_ += cycles_ + max_seq_ - base_seq_ + 1;
    received_prior_ += received_;
  }
  started_ = true;
  base_seq_ = seq;
  max_seq_ = seq;
  bad_seq_ = 65536 + 1;  // matches no sequence number
  cycles_ = 0;
  received_ = 0;
}

void StreamStats::OnRtp(const RtpHeader& rtp, absl::Time arrival, uint32_t clock_rate) {
  if (clock_rate == 0) clock_rate = kDefaultClockRate;
  Increment(packets_, 1);
  Increment(bytes_, rtp.header_length + rtp.payload_length);

  const uint16_t seq = rtp.sequence;
  bool counted = true;
  if (!started_ || rtp.ssrc != ssrc_ || new_space_) {
    new_space_ = false;
    Restart(seq);
    ssrc_ = rtp.ssrc;
    have_transit_ = false;  // another source's timestamps say nothing about this one's
  } else {
    const uint16_t udelta = static_cast<uint16_t>(seq - max_seq_);
    if (udelta == 0) {
      Increment(reordered_, 1);  // duplicate of the highest
    } else if (udelta < kMaxDropout) {
      if (seq < max_seq_) cycles_ += 65536;  // wrapped
      max_seq_ = seq;
    } else if (udelta <= 65536 - kMaxMisorder) {
      // A jump too large to be loss: the sender restarted, or this is a stray packet. Believe it
      // only if the next packet follows it (A.1).
      if (seq == bad_seq_) {
        Restart(seq);
      } else {
        bad_seq_ = static_cast<uint16_t>(seq + 1);
        counted = false;
      }
    } else {
      Increment(reordered_, 1);  // late: within kMaxMisorder behind the highest
    }
  }
  if (counted) ++received_;

  // A.8, in the payload clock: D = (Rj - Ri) - (Sj - Si), J += (|D| - J) / 16, kept scaled by 16.
  const int64_t now_us = absl::ToUnixMicros(arrival);
  if (packets() == 1) origin_us_ = now_us;
  const uint32_t previous_rate = clock_rate_.load(std::memory_order_relaxed);
  uint64_t jitter16 = jitter16_.load(std::memory_order_relaxed);
  if (previous_rate != clock_rate) {
    // The same jitter in the new clock's units.
    jitter16 = static_cast<uint64_t>(static_cast<double>(jitter16) * clock_rate / previous_rate);
    have_transit_ = false;
    clock_rate_.store(clock_rate, std::memory_order_relaxed);
  }
  const double units = static_cast<double>(now_us - origin_us_) * (static_cast<double>(clock_rate) / 1e6);
  const auto arrival_units = static_cast<uint32_t>(static_cast<uint64_t>(std::llround(units)));
  const uint32_t transit = arrival_units - rtp.timestamp;  // modulo 2^32, as the timestamps wrap
  if (have_transit_) {
    int64_t d = static_cast<int32_t>(transit - transit_);
    if (d < 0) d = -d;
    jitter16 = static_cast<uint64_t>(static_cast<int64_t>(jitter16) + d - static_cast<int64_t>((jitter16 + 8) >> 4));
  }
  transit_ = transit;
  have_transit_ = true;
  jitter16_.store(jitter16, std::memory_order_relaxed);

  const uint64_t expected = expected_prior_ + cycles_ + max_seq_ - base_seq_ + 1;
  expected_.store(expected, std::memory_order_relaxed);
  lost_.store(static_cast<int64_t>(expected) - static_cast<int64_t>(received_prior_ + received_),
              std::memory_order_relaxed);
}

double StreamStats::JitterMs() const {
  const double units = static_cast<double>(jitter16_.load(std::memory_order_relaxed)) / 16.0;
  return units * 1000.0 / static_cast<double>(clock_rate_.load(std::memory_order_relaxed));
}

}  // namespace latchkey::relay
