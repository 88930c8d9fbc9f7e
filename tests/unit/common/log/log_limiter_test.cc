#include "common/log/log_limiter.h"

#include "gtest/gtest.h"

namespace latchkey::log {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

TEST(LogLimiterTest, WritesABurstPerIntervalAndReportsWhatItSuppressed) {
  LogLimiter limiter(2, absl::Seconds(1));
  uint64_t suppressed = 99;
  EXPECT_TRUE(limiter.Allow(kT0, &suppressed));
  EXPECT_EQ(suppressed, 0u);
  EXPECT_TRUE(limiter.Allow(kT0 + absl::Milliseconds(1), &suppressed));
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(limiter.Allow(kT0 + absl::Milliseconds(10 + i), &suppressed));
  // The next interval: the first line says how many went unwritten.
  EXPECT_TRUE(limiter.Allow(kT0 + absl::Seconds(1), &suppressed));
  EXPECT_EQ(suppressed, 5u);
  EXPECT_TRUE(limiter.Allow(kT0 + absl::Seconds(1), &suppressed));
  EXPECT_EQ(suppressed, 0u);
}

}  // namespace
}  // namespace latchkey::log
