#include "media-relay/fastpath/kernel_stream_figures.h"

#include <vector>

#include "gtest/gtest.h"

namespace latchkey::relay {
namespace {

lk_stream_stats Cpu(uint64_t packets, uint64_t last_ns, uint32_t base, uint32_t highest, uint32_t last_seq,
                    uint32_t jitter16) {
  lk_stream_stats s{};
  s.packets = packets;
  s.bytes = packets * 172;
  s.last_ns = last_ns;
  s.base_seq_ext = base;
  s.max_seq_ext = highest;
  s.last_seq = last_seq;
  s.jitter16 = jitter16;
  s.started = 1;
  return s;
}

TEST(KernelStreamFiguresTest, NothingSeenIsAllZero) {
  const std::vector<lk_stream_stats> cpus(4);
  const KernelStreamFigures f = MergeKernelStream(cpus);
  EXPECT_EQ(f.packets, 0u);
  EXPECT_EQ(f.expected, 0u);
  EXPECT_EQ(f.last_ns, 0u);
  EXPECT_EQ(f.lost(), 0);
}

TEST(KernelStreamFiguresTest, OneCpuGivesItsFiguresAndLoss) {
  std::vector<lk_stream_stats> cpus(2);
  cpus[1] = Cpu(/*packets=*/95, /*last_ns=*/5'000, /*base=*/65'500, /*highest=*/65'599, /*last_seq=*/63, 32);
  const KernelStreamFigures f = MergeKernelStream(cpus);
  EXPECT_EQ(f.packets, 95u);
  EXPECT_EQ(f.bytes, 95u * 172);
  EXPECT_EQ(f.expected, 100u);
  EXPECT_EQ(f.lost(), 5);
  EXPECT_EQ(f.last_ns, 5'000u);
  EXPECT_EQ(f.last_seq, 63);
  EXPECT_EQ(f.jitter16, 32u);
}

TEST(KernelStreamFiguresTest, AStreamThatMovedCpuSumsCountsAndTakesTheNewestArrival) {
  std::vector<lk_stream_stats> cpus(3);
  cpus[0] = Cpu(60, 1'000, 100, 159, 159, 16);  // before an RX queue change
  cpus[2] = Cpu(40, 2'000, 160, 199, 199, 48);
  const KernelStreamFigures f = MergeKernelStream(cpus);
  EXPECT_EQ(f.packets, 100u);
  EXPECT_EQ(f.expected, 100u);
  EXPECT_EQ(f.lost(), 0);
  EXPECT_EQ(f.last_ns, 2'000u);
  EXPECT_EQ(f.last_seq, 199);
  EXPECT_EQ(f.jitter16, 16u) << "from the CPU that saw most of the stream";
}

}  // namespace
}  // namespace latchkey::relay
