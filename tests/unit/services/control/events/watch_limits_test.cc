#include "services/control/events/watch_limits.h"

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::control {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using Slot = std::unique_ptr<WatchLimits::Slot>;

Slot MustAcquire(WatchLimits& limits, const std::string& identity) {
  auto slot = limits.Acquire(identity);
  EXPECT_TRUE(slot.ok()) << identity << ": " << slot.status();
  return slot.ok() ? *std::move(slot) : nullptr;
}

TEST(WatchLimitsTest, PerIdentityLimitNamesItsField) {
  WatchLimits limits(/*per_identity=*/2, /*total=*/10);
  Slot a1 = MustAcquire(limits, "pbx/a");
  Slot a2 = MustAcquire(limits, "pbx/a");
  auto refused = limits.Acquire("pbx/a");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("max_watches_per_identity"));
  EXPECT_THAT(refused.status().message(), HasSubstr("pbx/a"));
  EXPECT_EQ(limits.open(), 2u);
  // Another identity still gets its own.
  Slot b1 = MustAcquire(limits, "pbx/b");
  EXPECT_EQ(limits.open(), 3u);
}

TEST(WatchLimitsTest, TotalLimitNamesItsField) {
  WatchLimits limits(/*per_identity=*/5, /*total=*/3);
  Slot a = MustAcquire(limits, "pbx/a");
  Slot b = MustAcquire(limits, "pbx/b");
  Slot c = MustAcquire(limits, "operator/c");
  auto refused = limits.Acquire("pbx/d");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  // "max_watches:" and not the per-identity field: the caller did nothing wrong on its own account.
  EXPECT_THAT(refused.status().message(), HasSubstr("max_watches:"));
  EXPECT_THAT(refused.status().message(), Not(HasSubstr("max_watches_per_identity")));
  EXPECT_EQ(limits.open(), 3u);
}

TEST(WatchLimitsTest, RefusalsTakeNoPlace) {
  WatchLimits limits(/*per_identity=*/1, /*total=*/2);
  Slot a = MustAcquire(limits, "pbx/a");
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(limits.Acquire("pbx/a").ok());
  EXPECT_EQ(limits.open(), 1u);
  Slot b = MustAcquire(limits, "pbx/b");
  EXPECT_EQ(limits.open(), 2u);
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(limits.Acquire("pbx/c").ok());
  a.reset();
  b.reset();
  EXPECT_EQ(limits.open(), 0u);
}

TEST(WatchLimitsTest, DestroyingASlotGivesItsPlaceBack) {
  WatchLimits limits(/*per_identity=*/1, /*total=*/1);
  Slot first = MustAcquire(limits, "pbx/a");
  ASSERT_FALSE(limits.Acquire("pbx/a").ok());
  ASSERT_FALSE(limits.Acquire("pbx/b").ok());
  first.reset();
  EXPECT_EQ(limits.open(), 0u);
  // Both the identity's place and the total place are free again.
  Slot again = MustAcquire(limits, "pbx/a");
  again.reset();
  Slot other = MustAcquire(limits, "pbx/b");
  EXPECT_EQ(limits.open(), 1u);
}

TEST(WatchLimitsTest, ReleasingOneIdentityDoesNotFreeAnother) {
  WatchLimits limits(/*per_identity=*/1, /*total=*/10);
  Slot a = MustAcquire(limits, "pbx/a");
  Slot b = MustAcquire(limits, "pbx/b");
  b.reset();
  EXPECT_FALSE(limits.Acquire("pbx/a").ok());
  EXPECT_TRUE(limits.Acquire("pbx/b").ok());
}

TEST(WatchLimitsTest, ConcurrentStreamsStayWithinBothLimits) {
  constexpr uint32_t kPerIdentity = 3;
  constexpr uint32_t kTotal = 7;
  constexpr int kIdentities = 4;  // 4 * 3 = 12 > 7: both limits are reachable
  constexpr int kThreadsPerIdentity = 3;
  WatchLimits limits(kPerIdentity, kTotal);

  std::atomic<int> open_total{0};
  std::atomic<int> peak_total{0};
  std::atomic<int> open_by_identity[kIdentities] = {};
  std::atomic<int> peak_by_identity[kIdentities] = {};
  std::atomic<int> refusals{0};
  auto raise = [](std::atomic<int>& peak, int value) {
    int seen = peak.load();
    while (value > seen && !peak.compare_exchange_weak(seen, value)) {
    }
  };

  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int id = 0; id < kIdentities; ++id) {
    for (int t = 0; t < kThreadsPerIdentity; ++t) {
      threads.emplace_back([&, id] {
        const std::string identity = absl::StrCat("pbx/", id);
        std::vector<Slot> held;
        while (!go.load()) {
        }
        for (int round = 0; round < 500; ++round) {
          // One more attempt than an identity may hold, so every thread presses the limits itself.
          for (uint32_t i = 0; i <= kPerIdentity; ++i) {
            auto slot = limits.Acquire(identity);
            if (!slot.ok()) {
              ++refusals;
              continue;
            }
            raise(peak_total, ++open_total);
            raise(peak_by_identity[id], ++open_by_identity[id]);
            held.push_back(*std::move(slot));
          }
          // Uncount before the slots are released, so the counters never exceed what the limits hold.
          open_total -= static_cast<int>(held.size());
          open_by_identity[id] -= static_cast<int>(held.size());
          held.clear();
        }
      });
    }
  }
  go = true;
  for (std::thread& thread : threads) thread.join();

  EXPECT_LE(peak_total.load(), static_cast<int>(kTotal));
  for (int id = 0; id < kIdentities; ++id) EXPECT_LE(peak_by_identity[id].load(), static_cast<int>(kPerIdentity));
  // Every round of every thread asked for one more than an identity may hold.
  EXPECT_GE(refusals.load(), kIdentities * kThreadsPerIdentity * 500);
  EXPECT_EQ(limits.open(), 0u);
  // Every place came back: the full limits are available again.
  std::vector<Slot> all;
  for (int id = 0; id < kIdentities && all.size() < kTotal; ++id) {
    for (uint32_t i = 0; i < kPerIdentity && all.size() < kTotal; ++i)
      all.push_back(MustAcquire(limits, absl::StrCat("pbx/", id)));
  }
  EXPECT_EQ(limits.open(), kTotal);
}

}  // namespace
}  // namespace latchkey::control
