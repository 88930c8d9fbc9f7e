#include "media-relay/latching/stream_stats.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace latchkey::relay {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

RtpHeader Rtp(uint16_t seq, uint32_t timestamp, uint32_t ssrc = 0x1234) {
  RtpHeader rtp;
  rtp.ssrc = ssrc;
  rtp.sequence = seq;
  rtp.timestamp = timestamp;
  rtp.header_length = 12;
  rtp.payload_length = 160;
  return rtp;
}

// Feeds sequence numbers at 20 ms / 160 timestamp units each (8 kHz, 20 ms frames).
void Feed(StreamStats& stats, const std::vector<uint16_t>& seqs, uint32_t ssrc = 0x1234) {
  int i = 0;
  for (uint16_t seq : seqs) {
    stats.OnRtp(Rtp(seq, uint32_t{seq} * 160, ssrc), kT0 + absl::Milliseconds(20 * i++));
  }
}

TEST(StreamStatsTest, EmptyIsZero) {
  StreamStats stats;
  EXPECT_EQ(stats.packets(), 0u);
  EXPECT_EQ(stats.bytes(), 0u);
  EXPECT_EQ(stats.Expected(), 0u);
  EXPECT_EQ(stats.Lost(), 0);
  EXPECT_EQ(stats.reordered(), 0u);
  EXPECT_EQ(stats.JitterMs(), 0.0);
}

TEST(StreamStatsTest, InOrderNoLoss) {
  StreamStats stats;
  std::vector<uint16_t> seqs;
  for (uint16_t s = 1000; s < 1100; ++s) seqs.push_back(s);
  Feed(stats, seqs);
  EXPECT_EQ(stats.packets(), 100u);
  EXPECT_EQ(stats.bytes(), 100u * 172);
  EXPECT_EQ(stats.Expected(), 100u);
  EXPECT_EQ(stats.Lost(), 0);
  EXPECT_EQ(stats.reordered(), 0u);
}

TEST(StreamStatsTest, PacketsCarriedElsewhereAreNotCountedAsLost) {
  StreamStats stats;
  Feed(stats, {100, 101, 102, 103});
  // 104 .. 199 went through the kernel fast path, which counts them itself.
  stats.NewSequenceSpace();
  Feed(stats, {200, 201, 202});
  EXPECT_EQ(stats.packets(), 7u);
  EXPECT_EQ(stats.Expected(), 7u);
  EXPECT_EQ(stats.Lost(), 0);
  Feed(stats, {204});  // loss after the switch still counts
  EXPECT_EQ(stats.Lost(), 1);
}

TEST(StreamStatsTest, LossAcrossSequenceWrap) {
  StreamStats stats;
  // 65530 .. 65535, 0 .. 9 is 16 packets; 65534, 2 and 3 are lost.
  Feed(stats, {65530, 65531, 65532, 65533, 65535, 0, 1, 4, 5, 6, 7, 8, 9});
  EXPECT_EQ(stats.Expected(), 16u);
  EXPECT_EQ(stats.Lost(), 3);
  EXPECT_EQ(stats.packets(), 13u);
  EXPECT_EQ(stats.reordered(), 0u);
}

TEST(StreamStatsTest, LongStreamWrapsManyTimes) {
  StreamStats stats;
  uint16_t seq = 60000;
  absl::Time t = kT0;
  uint32_t ts = 0;
  for (int i = 0; i < 200000; ++i, ++seq, ts += 160, t += absl::Milliseconds(20)) {
    if (i % 100 == 50) continue;  // 1% loss
    stats.OnRtp(Rtp(seq, ts), t);
  }
  EXPECT_EQ(stats.Expected(), 200000u);  // first .. last received, across three wraps
  EXPECT_EQ(stats.Lost(), 2000);
  EXPECT_NEAR(stats.JitterMs(), 0.0, 1e-9) << "losses do not disturb a paced stream's jitter";
}

TEST(StreamStatsTest, ReorderingCounted) {
  StreamStats stats;
  Feed(stats, {1, 2, 4, 3, 5, 6});
  EXPECT_EQ(stats.reordered(), 1u);
  EXPECT_EQ(stats.Expected(), 6u);
  EXPECT_EQ(stats.Lost(), 0);
}

TEST(StreamStatsTest, ReorderingAcrossWrap) {
  StreamStats stats;
  Feed(stats, {65534, 0, 65535, 1});
  EXPECT_EQ(stats.reordered(), 1u);
  EXPECT_EQ(stats.Expected(), 4u);
  EXPECT_EQ(stats.Lost(), 0);
}

TEST(StreamStatsTest, DuplicateMakesLossNegative) {
  StreamStats stats;
  Feed(stats, {1, 2, 2, 3});
  EXPECT_EQ(stats.reordered(), 1u);
  EXPECT_EQ(stats.Expected(), 3u);
  EXPECT_EQ(stats.Lost(), -1);  // RFC 3550 6.4.1: cumulative loss is signed
}

TEST(StreamStatsTest, LargeJumpBelievedOnlyWhenFollowed) {
  StreamStats stats;
  Feed(stats, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});
  stats.OnRtp(Rtp(30000, 0), kT0 + absl::Seconds(1));  // a stray packet: not counted
  EXPECT_EQ(stats.Expected(), 10u);
  EXPECT_EQ(stats.Lost(), 0);
  stats.OnRtp(Rtp(20000, 0), kT0 + absl::Seconds(1));   // sender restarted
  stats.OnRtp(Rtp(20001, 160), kT0 + absl::Seconds(1) + absl::Milliseconds(20));  // ... and it continues
  stats.OnRtp(Rtp(20002, 320), kT0 + absl::Seconds(1) + absl::Milliseconds(40));
  // 10 from the first run, 20001..20002 after the resync (20000 only armed it).
  EXPECT_EQ(stats.Expected(), 12u);
  EXPECT_EQ(stats.Lost(), 0);
  EXPECT_EQ(stats.packets(), 14u);
}

TEST(StreamStatsTest, NewSsrcStartsNewSequenceSpace) {
  StreamStats stats;
  Feed(stats, {100, 101, 102, 103, 104, 106, 107, 108, 109}, 0xaaaa);  // 105 lost
  Feed(stats, {5000, 5001, 5002, 5003, 5004, 5005, 5006, 5007, 5008, 5009}, 0xbbbb);
  EXPECT_EQ(stats.Expected(), 20u);
  EXPECT_EQ(stats.Lost(), 1);
  EXPECT_EQ(stats.packets(), 19u);
}

TEST(StreamStatsTest, PacedStreamHasNoJitter) {
  StreamStats stats;
  for (int i = 0; i < 500; ++i) {
    stats.OnRtp(Rtp(static_cast<uint16_t>(i), 4000000000u + 160u * i), kT0 + absl::Milliseconds(20 * i));
  }
  EXPECT_NEAR(stats.JitterMs(), 0.0, 1e-9) << "timestamps wrapping 2^32 included";
}

TEST(StreamStatsTest, OneLatePacketByHand) {
  // A.8: D = 16 ms late = 128 units at 8 kHz; J = 0 + (128 - 0) / 16 = 8 units = 1 ms.
  StreamStats stats;
  stats.OnRtp(Rtp(1, 0), kT0);
  stats.OnRtp(Rtp(2, 160), kT0 + absl::Milliseconds(20 + 16));
  EXPECT_DOUBLE_EQ(stats.JitterMs(), 1.0);
  // Back on time: D = 16 ms again, J = 8 + (128 - 8) / 16 = 15.5 units = 1.9375 ms.
  stats.OnRtp(Rtp(3, 320), kT0 + absl::Milliseconds(40));
  EXPECT_DOUBLE_EQ(stats.JitterMs(), 1.9375);
}

TEST(StreamStatsTest, JitteryStreamMatchesRfcFormula) {
  // Arrival offsets from the 20 ms grid, in ms.
  const std::vector<int> offsets = {0, 5, -3, 10, 0, 2, -1, 4, 7, -2, 0, 0, 3, 12, -4, 1};
  StreamStats stats;
  double expected_units = 0;
  for (size_t i = 0; i < offsets.size(); ++i) {
    stats.OnRtp(Rtp(static_cast<uint16_t>(i), static_cast<uint32_t>(160 * i)),
                kT0 + absl::Milliseconds(20 * static_cast<int>(i) + offsets[i]));
    if (i > 0) {
      const double d = std::abs(offsets[i] - offsets[i - 1]) * 8.0;  // ms -> 8 kHz units
      expected_units += (d - expected_units) / 16.0;
    }
  }
  // The RFC's integer form rounds; it stays within a fraction of a unit (0.125 ms) of the real formula.
  EXPECT_NEAR(stats.JitterMs(), expected_units / 8.0, 0.07);
  EXPECT_GT(stats.JitterMs(), 1.0);
}

TEST(StreamStatsTest, ClockRateIsAParameter) {
  // 48 kHz (Opus): 16 ms late = 768 units; J = 48 units = 1 ms.
  StreamStats stats;
  stats.OnRtp(Rtp(1, 0), kT0, 48000);
  stats.OnRtp(Rtp(2, 960), kT0 + absl::Milliseconds(36), 48000);
  EXPECT_DOUBLE_EQ(stats.JitterMs(), 1.0);
}

TEST(StreamStatsTest, ReadersOnOtherThreadsSeeSnapshots) {
  StreamStats stats;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    uint64_t last = 0;
    while (!done.load()) {
      const uint64_t packets = stats.packets();
      EXPECT_GE(packets, last);
      last = packets;
      (void)stats.JitterMs();
      (void)stats.Lost();
      (void)stats.Expected();
    }
  });
  for (int i = 0; i < 100000; ++i) {
    stats.OnRtp(Rtp(static_cast<uint16_t>(i), 160u * i), kT0 + absl::Milliseconds(20 * i));
  }
  done.store(true);
  reader.join();
  EXPECT_EQ(stats.packets(), 100000u);
}

}  // namespace
}  // namespace latchkey::relay
