#include "services/control/ng/reply_cache.h"

#include "gtest/gtest.h"

namespace latchkey::control::ng {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);
using Lookup = ReplyCache::Lookup;

TEST(ReplyCacheTest, ARetransmissionGetsTheSameReplyAndNeverRunsTwice) {
  ReplyCache cache;
  std::string reply;
  EXPECT_EQ(cache.Begin("127.0.0.1:40000", "1_2_3", kT0, &reply), Lookup::kNew);
  // The same datagram again while the command runs: dropped (the reply goes to that address).
  EXPECT_EQ(cache.Begin("127.0.0.1:40000", "1_2_3", kT0 + absl::Milliseconds(500), &reply), Lookup::kBusy);
  cache.Finish("127.0.0.1:40000", "1_2_3", "1_2_3 d6:result2:oke", kT0 + absl::Milliseconds(600));
  EXPECT_EQ(cache.Begin("127.0.0.1:40000", "1_2_3", kT0 + absl::Seconds(1), &reply), Lookup::kDone);
  EXPECT_EQ(reply, "1_2_3 d6:result2:oke");
  // Another source with the same cookie (two Kamailios with one server_id) is another request.
  EXPECT_EQ(cache.Begin("127.0.0.1:40001", "1_2_3", kT0 + absl::Seconds(1), &reply), Lookup::kNew);
}

TEST(ReplyCacheTest, RepliesAreKeptForOneToTwoRetentions) {
  ReplyCache cache(absl::Seconds(30));
  std::string reply;
  ASSERT_EQ(cache.Begin("a", "c1", kT0, &reply), Lookup::kNew);
  cache.Finish("a", "c1", "r1", kT0);
  EXPECT_EQ(cache.Begin("a", "c1", kT0 + absl::Seconds(29), &reply), Lookup::kDone);
  EXPECT_EQ(cache.Begin("a", "c1", kT0 + absl::Seconds(31), &reply), Lookup::kDone) << "in the older generation";
  ASSERT_EQ(cache.Begin("a", "c2", kT0 + absl::Seconds(31), &reply), Lookup::kNew);
  cache.Finish("a", "c2", "r2", kT0 + absl::Seconds(31));
  // Another rotation: c1's generation goes, c2's stays.
  EXPECT_EQ(cache.Begin("a", "c1", kT0 + absl::Seconds(62), &reply), Lookup::kNew);
  EXPECT_EQ(cache.Begin("a", "c2", kT0 + absl::Seconds(62), &reply), Lookup::kDone);
  // Long silence: everything finished is gone.
  EXPECT_EQ(cache.Begin("a", "c2", kT0 + absl::Seconds(200), &reply), Lookup::kNew);
}

TEST(ReplyCacheTest, ACommandStillRunningAcrossARotationIsFinishedAndReplayed) {
  ReplyCache cache(absl::Seconds(30));
  std::string reply;
  ASSERT_EQ(cache.Begin("a", "slow", kT0, &reply), Lookup::kNew);
  EXPECT_EQ(cache.Begin("b", "other", kT0 + absl::Seconds(31), &reply), Lookup::kNew);  // rotates
  EXPECT_EQ(cache.Begin("b", "other2", kT0 + absl::Seconds(62), &reply), Lookup::kNew);  // rotates again
  cache.Finish("a", "slow", "late reply", kT0 + absl::Seconds(63));
  EXPECT_EQ(cache.Begin("a", "slow", kT0 + absl::Seconds(64), &reply), Lookup::kDone);
  EXPECT_EQ(reply, "late reply");
}

TEST(ReplyCacheTest, AFullCacheStillServesButDoesNotRemember) {
  ReplyCache cache(absl::Seconds(30), /*max_entries=*/2);
  std::string reply;
  EXPECT_EQ(cache.Begin("a", "1", kT0, &reply), Lookup::kNew);
  EXPECT_EQ(cache.Begin("a", "2", kT0, &reply), Lookup::kNew);
  EXPECT_EQ(cache.Begin("a", "3", kT0, &reply), Lookup::kNew);
  cache.Finish("a", "3", "r3", kT0);
  EXPECT_EQ(cache.uncached(), 1u);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.Begin("a", "3", kT0, &reply), Lookup::kNew) << "not remembered";
}

TEST(ReplyCacheTest, BigRepliesPastTheByteBoundAreServedButNotKept) {
  ReplyCache cache(absl::Seconds(30), 100, /*max_bytes=*/100);
  std::string reply;
  ASSERT_EQ(cache.Begin("a", "c1", kT0, &reply), Lookup::kNew);
  EXPECT_TRUE(cache.Finish("a", "c1", std::string(80, 'x'), kT0));
  ASSERT_EQ(cache.Begin("a", "c2", kT0, &reply), Lookup::kNew);
  EXPECT_FALSE(cache.Finish("a", "c2", std::string(80, 'y'), kT0));  // > 100 with the first: not kept
  EXPECT_EQ(cache.Begin("a", "c1", kT0, &reply), Lookup::kDone);
  EXPECT_EQ(cache.Begin("a", "c2", kT0, &reply), Lookup::kNew) << "runs again";
  EXPECT_EQ(cache.uncached(), 1u);
  // The older generation still counts against the bound after a rotation...
  ASSERT_EQ(cache.Begin("a", "c3", kT0 + absl::Seconds(31), &reply), Lookup::kNew);
  EXPECT_FALSE(cache.Finish("a", "c3", std::string(80, 'z'), kT0 + absl::Seconds(31)));
  // ... until it is gone, and keys count too.
  ASSERT_EQ(cache.Begin("a", "c4", kT0 + absl::Seconds(62), &reply), Lookup::kNew);
  EXPECT_TRUE(cache.Finish("a", "c4", std::string(80, 'w'), kT0 + absl::Seconds(62)));
  ASSERT_EQ(cache.Begin("a", std::string(60, 'k'), kT0 + absl::Seconds(62), &reply), Lookup::kNew);
  EXPECT_FALSE(cache.Finish("a", std::string(60, 'k'), "r", kT0 + absl::Seconds(62)));
}

}  // namespace
}  // namespace latchkey::control::ng
