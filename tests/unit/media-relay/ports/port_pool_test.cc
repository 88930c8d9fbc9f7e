#include "media-relay/ports/port_pool.h"

#include <algorithm>
#include <functional>
#include <set>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::relay {
namespace {

using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

PortPool MustCreate(uint32_t min, uint32_t max, absl::Duration quarantine = absl::Seconds(10)) {
  auto pool = PortPool::Create(min, max, quarantine);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return *std::move(pool);
}

TEST(PortPoolCreateTest, RejectsOddMin) {
  auto pool = PortPool::Create(20001, 20100, absl::Seconds(1));
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(pool.status().message()), HasSubstr("port_min"));
}

TEST(PortPoolCreateTest, RejectsMinBelow1024) {
  auto pool = PortPool::Create(1022, 2000, absl::Seconds(1));
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(pool.status().message()), HasSubstr("port_min"));
  EXPECT_EQ(PortPool::Create(0, 2000, absl::Seconds(1)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(PortPool::Create(1024, 2000, absl::Seconds(1)).ok());
}

TEST(PortPoolCreateTest, RejectsMaxAbove65535) {
  auto pool = PortPool::Create(60000, 65536, absl::Seconds(1));
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(pool.status().message()), HasSubstr("port_max"));
  EXPECT_EQ(PortPool::Create(60000, 70000, absl::Seconds(1)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PortPoolCreateTest, RejectsMaxNotAboveMin) {
  auto equal = PortPool::Create(20000, 20000, absl::Seconds(1));
  EXPECT_EQ(equal.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(equal.status().message()), HasSubstr("port_max"));
  EXPECT_EQ(PortPool::Create(20000, 19000, absl::Seconds(1)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PortPoolCreateTest, RejectsNegativeQuarantine) {
  auto pool = PortPool::Create(20000, 20100, -absl::Seconds(1));
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(pool.status().message()), HasSubstr("quarantine"));
  EXPECT_TRUE(PortPool::Create(20000, 20100, absl::ZeroDuration()).ok());
}

TEST(PortPoolCreateTest, TopOfRangeIsUsable) {
  PortPool pool = MustCreate(65534, 65535);
  EXPECT_EQ(pool.TotalPairs(), 1u);
  auto port = pool.Allocate(kT0);
  ASSERT_TRUE(port.ok()) << port.status();
  EXPECT_EQ(*port, 65534);
}

TEST(PortPoolTest, CountsWholePairsOnly) {
  // 20000..20199: 100 pairs. With an even max the last port has no RTCP partner.
  EXPECT_EQ(MustCreate(20000, 20199).TotalPairs(), 100u);
  EXPECT_EQ(MustCreate(20000, 20200).TotalPairs(), 100u);
  EXPECT_EQ(MustCreate(20000, 20001).TotalPairs(), 1u);
}

TEST(PortPoolTest, AllocatesEvenPortsInRangeWithoutDuplicatesUntilExhausted) {
  constexpr uint32_t kMin = 30000, kMax = 30200;  // even max: 30200 has no 30201 and must not be handed out
  PortPool pool = MustCreate(kMin, kMax);
  const uint32_t pairs = pool.TotalPairs();
  ASSERT_EQ(pairs, 100u);
  EXPECT_EQ(pool.FreePairs(kT0), pairs);
  std::set<uint16_t> seen;
  for (uint32_t i = 0; i < pairs; ++i) {
    auto port = pool.Allocate(kT0);
    ASSERT_TRUE(port.ok()) << "allocation " << i << ": " << port.status();
    EXPECT_EQ(*port % 2, 0) << *port;
    EXPECT_GE(static_cast<uint32_t>(*port), kMin);
    EXPECT_LE(static_cast<uint32_t>(*port) + 1u, kMax) << "RTCP port of " << *port << " is outside the range";
    EXPECT_TRUE(seen.insert(*port).second) << "duplicate " << *port;
  }
  EXPECT_EQ(seen.size(), pairs);
  EXPECT_EQ(pool.FreePairs(kT0), 0u);
  auto exhausted = pool.Allocate(kT0);
  EXPECT_EQ(exhausted.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(PortPoolTest, ReleasedPortIsQuarantinedThenReusable) {
  PortPool pool = MustCreate(20000, 20003, absl::Seconds(10));  // 2 pairs
  const uint16_t a = pool.Allocate(kT0).value();
  const uint16_t b = pool.Allocate(kT0).value();
  ASSERT_NE(a, b);
  pool.Release(a, kT0 + absl::Seconds(5));

  EXPECT_EQ(pool.FreePairs(kT0 + absl::Seconds(14)), 0u);
  EXPECT_EQ(pool.Allocate(kT0 + absl::Seconds(14)).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(pool.Allocate(kT0 + absl::Seconds(15) - absl::Nanoseconds(1)).status().code(),
            absl::StatusCode::kResourceExhausted);

  EXPECT_EQ(pool.FreePairs(kT0 + absl::Seconds(15)), 1u);
  auto again = pool.Allocate(kT0 + absl::Seconds(15));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, a);
  EXPECT_EQ(pool.Allocate(kT0 + absl::Seconds(15)).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(PortPoolTest, QuarantinedPortIsNotHandedOutWhileOthersAreFree) {
  PortPool pool = MustCreate(20000, 20009, absl::Seconds(30));  // 5 pairs
  const uint16_t released = pool.Allocate(kT0).value();
  pool.Release(released, kT0);
  // The 4 others come out before the quarantine ends; the released one never does.
  for (int i = 0; i < 4; ++i) {
    auto port = pool.Allocate(kT0 + absl::Seconds(1));
    ASSERT_TRUE(port.ok()) << port.status();
    EXPECT_NE(*port, released);
  }
  EXPECT_EQ(pool.Allocate(kT0 + absl::Seconds(29)).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(pool.Allocate(kT0 + absl::Seconds(30)).value(), released);
}

TEST(PortPoolTest, ZeroQuarantineReusesImmediately) {
  PortPool pool = MustCreate(20000, 20001, absl::ZeroDuration());
  const uint16_t port = pool.Allocate(kT0).value();
  pool.Release(port, kT0);
  EXPECT_EQ(pool.FreePairs(kT0), 1u);
  EXPECT_EQ(pool.Allocate(kT0).value(), port);
}

TEST(PortPoolTest, AllocationOrderIsRandomised) {
  PortPool pool = MustCreate(40000, 41999);  // 1000 pairs
  ASSERT_EQ(pool.TotalPairs(), 1000u);
  std::vector<uint16_t> ports;
  for (int i = 0; i < 50; ++i) ports.push_back(pool.Allocate(kT0).value());
  EXPECT_FALSE(std::is_sorted(ports.begin(), ports.end())) << "50 allocations came out in ascending order";
  EXPECT_FALSE(std::is_sorted(ports.begin(), ports.end(), std::greater<>()));
  // Spread over the range, not clustered at its start.
  EXPECT_GT(*std::max_element(ports.begin(), ports.end()), 40000 + 2 * 100);
}

TEST(PortPoolTest, TwoPoolsDoNotShareOrder) {
  PortPool a = MustCreate(40000, 41999);
  PortPool b = MustCreate(40000, 41999);
  std::vector<uint16_t> from_a, from_b;
  for (int i = 0; i < 20; ++i) {
    from_a.push_back(a.Allocate(kT0).value());
    from_b.push_back(b.Allocate(kT0).value());
  }
  EXPECT_NE(from_a, from_b) << "two pools produced the same predictable sequence";
}

}  // namespace
}  // namespace latchkey::relay
