#include "services/control/quota/owner_quota.h"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::control {
namespace {

using ::testing::HasSubstr;

TEST(OwnerQuotaTest, RefusesAtTheLimitNamingTheQuotaField) {
  OwnerQuota quota("bindings", "max_bindings_per_pbx", 3);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(quota.Acquire("pbx/a").ok()) << i;
  EXPECT_EQ(quota.held("pbx/a"), 3u);

  const absl::Status refused = quota.Acquire("pbx/a");
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), HasSubstr("max_bindings_per_pbx"));
  EXPECT_THAT(refused.message(), HasSubstr("pbx/a"));
  EXPECT_THAT(refused.message(), HasSubstr("bindings"));
  // A refusal takes nothing.
  EXPECT_EQ(quota.held("pbx/a"), 3u);
}

TEST(OwnerQuotaTest, OneOwnerAtItsLimitDoesNotAffectOthers) {
  OwnerQuota quota("sessions", "max_sessions_per_pbx", 2);
  ASSERT_TRUE(quota.Acquire("pbx/a").ok());
  ASSERT_TRUE(quota.Acquire("pbx/a").ok());
  ASSERT_FALSE(quota.Acquire("pbx/a").ok());

  EXPECT_TRUE(quota.Acquire("pbx/b").ok());
  EXPECT_TRUE(quota.Acquire("pbx/b").ok());
  EXPECT_EQ(quota.held("pbx/b"), 2u);
  EXPECT_EQ(quota.held("pbx/a"), 2u);
}

TEST(OwnerQuotaTest, ReleaseFreesAPlace) {
  OwnerQuota quota("bindings", "max_bindings_per_pbx", 1);
  ASSERT_TRUE(quota.Acquire("pbx/a").ok());
  ASSERT_FALSE(quota.Acquire("pbx/a").ok());
  quota.Release("pbx/a");
  EXPECT_EQ(quota.held("pbx/a"), 0u);
  EXPECT_TRUE(quota.Acquire("pbx/a").ok());
  EXPECT_EQ(quota.held("pbx/a"), 1u);
}

TEST(OwnerQuotaTest, ReleaseNeverGoesBelowZero) {
  OwnerQuota quota("bindings", "max_bindings_per_pbx", 2);
  quota.Release("pbx/never-acquired");
  EXPECT_EQ(quota.held("pbx/never-acquired"), 0u);

  ASSERT_TRUE(quota.Acquire("pbx/a").ok());
  quota.Release("pbx/a");
  quota.Release("pbx/a");  // one more than taken: must not wrap around to a huge count
  EXPECT_EQ(quota.held("pbx/a"), 0u);
  // And the extra release did not grant an extra place either.
  EXPECT_TRUE(quota.Acquire("pbx/a").ok());
  EXPECT_TRUE(quota.Acquire("pbx/a").ok());
  EXPECT_FALSE(quota.Acquire("pbx/a").ok());
}

TEST(OwnerQuotaTest, OnlyPbxOwnersAreCounted) {
  OwnerQuota quota("bindings", "max_bindings_per_pbx", 1);
  // Operators and plaintext callers are bounded by the global limits only.
  for (const std::string owner : {"operator/alice", "", "anonymous", "pbx", "pbxx/a", "PBX/a", "worker/pbx/a"}) {
    for (int i = 0; i < 5; ++i) EXPECT_TRUE(quota.Acquire(owner).ok()) << owner;
    EXPECT_EQ(quota.held(owner), 0u) << owner;
    quota.Release(owner);  // harmless
  }
  EXPECT_TRUE(OwnerQuota::Counted("pbx/a"));
  EXPECT_FALSE(OwnerQuota::Counted("operator/a"));
  EXPECT_FALSE(OwnerQuota::Counted("xpbx/a"));
}

TEST(OwnerQuotaTest, ZeroLimitRefusesEveryPbx) {
  OwnerQuota quota("bindings", "max_bindings_per_pbx", 0);
  EXPECT_EQ(quota.Acquire("pbx/a").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(quota.held("pbx/a"), 0u);
  EXPECT_TRUE(quota.Acquire("operator/a").ok());
}

TEST(OwnerQuotaTest, ConcurrentAcquiresNeverExceedTheLimit) {
  constexpr uint64_t kLimit = 100;
  constexpr int kThreads = 8;
  constexpr int kAttemptsPerThread = 200;
  OwnerQuota quota("sessions", "max_sessions_per_pbx", kLimit);
  std::atomic<int> granted{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kAttemptsPerThread; ++i) {
        if (quota.Acquire("pbx/shared").ok()) {
          ++granted;
        } else {
          ++refused;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(granted.load(), static_cast<int>(kLimit));
  EXPECT_EQ(refused.load(), kThreads * kAttemptsPerThread - static_cast<int>(kLimit));
  EXPECT_EQ(quota.held("pbx/shared"), kLimit);
}

TEST(OwnerQuotaTest, ConcurrentAcquireAndReleaseKeepEachHolderUnderTheLimit) {
  // Each thread holds up to a few places at a time and gives them back; the number it believes it
  // holds, summed over threads, must never pass the limit.
  constexpr uint64_t kLimit = 5;
  constexpr int kThreads = 6;
  OwnerQuota quota("bindings", "max_bindings_per_pbx", kLimit);
  std::atomic<int> holding{0};
  std::atomic<int> peak{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        if (!quota.Acquire("pbx/a").ok()) continue;
        const int now = ++holding;
        int seen = peak.load();
        while (now > seen && !peak.compare_exchange_weak(seen, now)) {
        }
        --holding;  // before Release: `holding` never counts a place already given back
        quota.Release("pbx/a");
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_LE(peak.load(), static_cast<int>(kLimit));
  EXPECT_GE(peak.load(), 1);
  EXPECT_EQ(quota.held("pbx/a"), 0u);
}

}  // namespace
}  // namespace latchkey::control
