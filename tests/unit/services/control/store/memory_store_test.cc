#include "services/control/store/memory_store.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::control {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

std::vector<std::string> Keys(const std::vector<StoredRecord>& records) {
  std::vector<std::string> keys;
  for (const StoredRecord& r : records) keys.push_back(r.key);
  return keys;
}

std::vector<std::string> ListKeys(MemoryStore& store, Table table, absl::string_view prefix,
                                  absl::string_view start_after, size_t limit) {
  auto records = store.List(table, prefix, start_after, limit);
  EXPECT_TRUE(records.ok()) << records.status();
  return records.ok() ? Keys(*records) : std::vector<std::string>{};
}

std::vector<std::string> TakeKeys(MemoryStore& store, Table table, absl::Time now, size_t limit) {
  auto records = store.TakeExpired(table, now, limit);
  EXPECT_TRUE(records.ok()) << records.status();
  return records.ok() ? Keys(*records) : std::vector<std::string>{};
}

TEST(MemoryStoreTest, PutThenGetReturnsValue) {
  MemoryStore store;
  ASSERT_TRUE(store.Put(Table::kBindings, "b1", "value-1", absl::InfiniteFuture()).ok());
  auto value = store.Get(Table::kBindings, "b1");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "value-1");
}

TEST(MemoryStoreTest, GetMissingIsNotFound) {
  MemoryStore store;
  EXPECT_EQ(store.Get(Table::kBindings, "nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(MemoryStoreTest, PutReplacesValue) {
  MemoryStore store;
  ASSERT_TRUE(store.Put(Table::kBindings, "b1", "old", absl::InfiniteFuture()).ok());
  ASSERT_TRUE(store.Put(Table::kBindings, "b1", "new", absl::InfiniteFuture()).ok());
  EXPECT_EQ(store.Get(Table::kBindings, "b1").value(), "new");
  EXPECT_EQ(store.Count(Table::kBindings), 1u);
}

TEST(MemoryStoreTest, DeleteRemovesAndIsIdempotent) {
  MemoryStore store;
  ASSERT_TRUE(store.Put(Table::kBindings, "b1", "v", kT0 + absl::Seconds(10)).ok());
  ASSERT_TRUE(store.Delete(Table::kBindings, "b1").ok());
  EXPECT_EQ(store.Get(Table::kBindings, "b1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.Count(Table::kBindings), 0u);
  EXPECT_TRUE(store.Delete(Table::kBindings, "b1").ok());
  EXPECT_TRUE(store.Delete(Table::kBindings, "never-existed").ok());
  // A deleted record's expiry must not surface later.
  EXPECT_THAT(TakeKeys(store, Table::kBindings, kT0 + absl::Hours(1), 10), IsEmpty());
}

TEST(MemoryStoreTest, ReplaceMovesExpiryAndOldExpiryNoLongerFires) {
  MemoryStore store;
  ASSERT_TRUE(store.Put(Table::kBindings, "b1", "v1", kT0 + absl::Seconds(10)).ok());
  ASSERT_TRUE(store.Put(Table::kBindings, "b1", "v2", kT0 + absl::Seconds(100)).ok());
  EXPECT_THAT(TakeKeys(store, Table::kBindings, kT0 + absl::Seconds(50), 10), IsEmpty());
  EXPECT_EQ(store.Get(Table::kBindings, "b1").value(), "v2");
  auto taken = store.TakeExpired(Table::kBindings, kT0 + absl::Seconds(100), 10);
  ASSERT_TRUE(taken.ok());
  ASSERT_EQ(taken->size(), 1u);
  EXPECT_EQ((*taken)[0].key, "b1");
  EXPECT_EQ((*taken)[0].value, "v2");
  EXPECT_EQ(store.Count(Table::kBindings), 0u);
}

TEST(MemoryStoreTest, ReplaceWithInfiniteFutureCancelsExpiry) {
  MemoryStore store;
  ASSERT_TRUE(store.Put(Table::kBindings, "b1", "v1", kT0 + absl::Seconds(10)).ok());
  ASSERT_TRUE(store.Put(Table::kBindings, "b1", "v2", absl::InfiniteFuture()).ok());
  EXPECT_THAT(TakeKeys(store, Table::kBindings, kT0 + absl::Hours(24 * 365), 10), IsEmpty());
  EXPECT_EQ(store.Count(Table::kBindings), 1u);
}

TEST(MemoryStoreTest, ReplaceWithEarlierExpiryFiresEarlier) {
  MemoryStore store;
  ASSERT_TRUE(store.Put(Table::kBindings, "b1", "v1", kT0 + absl::Seconds(100)).ok());
  ASSERT_TRUE(store.Put(Table::kBindings, "b1", "v2", kT0 + absl::Seconds(5)).ok());
  EXPECT_THAT(TakeKeys(store, Table::kBindings, kT0 + absl::Seconds(5), 10), ElementsAre("b1"));
  EXPECT_THAT(TakeKeys(store, Table::kBindings, kT0 + absl::Seconds(200), 10), IsEmpty());
}

class MemoryStoreListTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Inserted out of order on purpose.
    for (const char* key : {"bob\x1f" "2", "alice\x1f" "3", "alice\x1f" "1", "carol\x1f" "1", "alice\x1f" "2",
                            "alicex", "bob\x1f" "1"}) {
      ASSERT_TRUE(store_.Put(Table::kBindingIdentity, key, absl::StrCat("v:", key), absl::InfiniteFuture()).ok());
    }
  }
  MemoryStore store_;
};

TEST_F(MemoryStoreListTest, EmptyPrefixListsEverythingInKeyOrder) {
  EXPECT_THAT(ListKeys(store_, Table::kBindingIdentity, "", "", 100),
              ElementsAre("alice\x1f" "1", "alice\x1f" "2", "alice\x1f" "3", "alicex", "bob\x1f" "1",
                          "bob\x1f" "2", "carol\x1f" "1"));
}

TEST_F(MemoryStoreListTest, PrefixSelectsOnlyMatchingKeys) {
  EXPECT_THAT(ListKeys(store_, Table::kBindingIdentity, "alice\x1f", "", 100),
              ElementsAre("alice\x1f" "1", "alice\x1f" "2", "alice\x1f" "3"));
  EXPECT_THAT(ListKeys(store_, Table::kBindingIdentity, "bob\x1f", "", 100), ElementsAre("bob\x1f" "1", "bob\x1f" "2"));
  EXPECT_THAT(ListKeys(store_, Table::kBindingIdentity, "dave", "", 100), IsEmpty());
}

TEST_F(MemoryStoreListTest, ValuesAreReturned) {
  auto records = store_.List(Table::kBindingIdentity, "carol", "", 10);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  EXPECT_EQ((*records)[0].value, "v:carol\x1f" "1");
}

TEST_F(MemoryStoreListTest, StartAfterIsExclusive) {
  EXPECT_THAT(ListKeys(store_, Table::kBindingIdentity, "alice\x1f", "alice\x1f" "1", 100),
              ElementsAre("alice\x1f" "2", "alice\x1f" "3"));
  EXPECT_THAT(ListKeys(store_, Table::kBindingIdentity, "", "alicex", 100),
              ElementsAre("bob\x1f" "1", "bob\x1f" "2", "carol\x1f" "1"));
  // A cursor that is not itself a key.
  EXPECT_THAT(ListKeys(store_, Table::kBindingIdentity, "", "b", 100),
              ElementsAre("bob\x1f" "1", "bob\x1f" "2", "carol\x1f" "1"));
}

TEST_F(MemoryStoreListTest, StartAfterBeforePrefixStartsAtPrefix) {
  EXPECT_THAT(ListKeys(store_, Table::kBindingIdentity, "bob\x1f", "alice\x1f" "2", 100),
              ElementsAre("bob\x1f" "1", "bob\x1f" "2"));
}

TEST_F(MemoryStoreListTest, StartAfterPastPrefixIsEmpty) {
  EXPECT_THAT(ListKeys(store_, Table::kBindingIdentity, "alice\x1f", "alice\x1f" "3", 100), IsEmpty());
  EXPECT_THAT(ListKeys(store_, Table::kBindingIdentity, "alice\x1f", "bob", 100), IsEmpty());
}

TEST_F(MemoryStoreListTest, LimitTruncatesAndPagesResume) {
  std::vector<std::string> all;
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    auto keys = ListKeys(store_, Table::kBindingIdentity, "", cursor, 3);
    EXPECT_LE(keys.size(), 3u);
    if (keys.empty()) break;
    all.insert(all.end(), keys.begin(), keys.end());
    cursor = keys.back();
  }
  EXPECT_THAT(all, ElementsAre("alice\x1f" "1", "alice\x1f" "2", "alice\x1f" "3", "alicex", "bob\x1f" "1",
                               "bob\x1f" "2", "carol\x1f" "1"));
  EXPECT_THAT(ListKeys(store_, Table::kBindingIdentity, "alice", "", 2), ElementsAre("alice\x1f" "1", "alice\x1f" "2"));
}

TEST(MemoryStoreTest, TakeExpiredReturnsOnlyExpiredEarliestFirstAndRemovesThem) {
  MemoryStore store;
  ASSERT_TRUE(store.Put(Table::kBindings, "c", "vc", kT0 + absl::Seconds(30)).ok());
  ASSERT_TRUE(store.Put(Table::kBindings, "a", "va", kT0 + absl::Seconds(20)).ok());
  ASSERT_TRUE(store.Put(Table::kBindings, "b", "vb", kT0 + absl::Seconds(10)).ok());
  ASSERT_TRUE(store.Put(Table::kBindings, "d", "vd", kT0 + absl::Seconds(40)).ok());
  ASSERT_TRUE(store.Put(Table::kBindings, "forever", "vf", absl::InfiniteFuture()).ok());

  auto taken = store.TakeExpired(Table::kBindings, kT0 + absl::Seconds(30), 100);
  ASSERT_TRUE(taken.ok());
  ASSERT_EQ(taken->size(), 3u);
  EXPECT_EQ((*taken)[0].key, "b");
  EXPECT_EQ((*taken)[0].value, "vb");
  EXPECT_EQ((*taken)[1].key, "a");
  EXPECT_EQ((*taken)[1].value, "va");
  EXPECT_EQ((*taken)[2].key, "c");  // expiry == now counts as expired
  EXPECT_EQ((*taken)[2].value, "vc");

  EXPECT_EQ(store.Count(Table::kBindings), 2u);
  EXPECT_EQ(store.Get(Table::kBindings, "a").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.Get(Table::kBindings, "d").value(), "vd");
  // Already taken: not returned twice.
  EXPECT_THAT(TakeKeys(store, Table::kBindings, kT0 + absl::Seconds(30), 100), IsEmpty());
}

TEST(MemoryStoreTest, TakeExpiredNothingBeforeExpiry) {
  MemoryStore store;
  ASSERT_TRUE(store.Put(Table::kBindings, "a", "va", kT0 + absl::Seconds(20)).ok());
  EXPECT_THAT(TakeKeys(store, Table::kBindings, kT0 + absl::Seconds(20) - absl::Nanoseconds(1), 100), IsEmpty());
  EXPECT_EQ(store.Count(Table::kBindings), 1u);
}

TEST(MemoryStoreTest, TakeExpiredRespectsLimit) {
  MemoryStore store;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(store.Put(Table::kSessions, absl::StrCat("s", i), "v", kT0 + absl::Seconds(10 - i)).ok());
  }
  EXPECT_THAT(TakeKeys(store, Table::kSessions, kT0 + absl::Seconds(100), 3), ElementsAre("s9", "s8", "s7"));
  EXPECT_EQ(store.Count(Table::kSessions), 7u);
  EXPECT_THAT(TakeKeys(store, Table::kSessions, kT0 + absl::Seconds(100), 3), ElementsAre("s6", "s5", "s4"));
  EXPECT_THAT(TakeKeys(store, Table::kSessions, kT0 + absl::Seconds(100), 0), IsEmpty());
  EXPECT_EQ(store.Count(Table::kSessions), 4u);
}

TEST(MemoryStoreTest, ListExpiredLeavesRecordsReadableUntilRewrittenOrDeleted) {
  MemoryStore store;
  ASSERT_TRUE(store.Put(Table::kSessions, "late", "vl", kT0 + absl::Seconds(50)).ok());
  ASSERT_TRUE(store.Put(Table::kSessions, "b", "vb", kT0 + absl::Seconds(20)).ok());
  ASSERT_TRUE(store.Put(Table::kSessions, "a", "va", kT0 + absl::Seconds(10)).ok());
  ASSERT_TRUE(store.Put(Table::kSessions, "forever", "vf", absl::InfiniteFuture()).ok());

  auto listed = store.ListExpired(Table::kSessions, kT0 + absl::Seconds(20), 100);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].key, "a");
  EXPECT_EQ((*listed)[0].value, "va");
  EXPECT_EQ((*listed)[1].key, "b");
  EXPECT_EQ(store.Count(Table::kSessions), 4u);
  EXPECT_EQ(store.Get(Table::kSessions, "a").value(), "va");
  EXPECT_EQ(store.ListExpired(Table::kSessions, kT0 + absl::Seconds(20), 1)->size(), 1u);

  // A re-write with a later expiry leaves the expired set; a delete leaves the table.
  ASSERT_TRUE(store.Put(Table::kSessions, "a", "va2", kT0 + absl::Seconds(60)).ok());
  ASSERT_TRUE(store.Delete(Table::kSessions, "b").ok());
  EXPECT_TRUE(store.ListExpired(Table::kSessions, kT0 + absl::Seconds(20), 100)->empty());
  auto later = store.ListExpired(Table::kSessions, kT0 + absl::Seconds(60), 100);
  ASSERT_EQ(later->size(), 2u);
  EXPECT_EQ((*later)[0].key, "late");
  EXPECT_EQ((*later)[1].key, "a");
  EXPECT_EQ((*later)[1].value, "va2");
}

TEST(MemoryStoreTest, InfiniteFutureNeverExpires) {
  MemoryStore store;
  ASSERT_TRUE(store.Put(Table::kBindings, "forever", "v", absl::InfiniteFuture()).ok());
  EXPECT_THAT(TakeKeys(store, Table::kBindings, absl::FromUnixSeconds(int64_t{1} << 40), 100), IsEmpty());
  EXPECT_THAT(TakeKeys(store, Table::kBindings, absl::InfiniteFuture(), 100), IsEmpty());
  EXPECT_EQ(store.Count(Table::kBindings), 1u);
}

TEST(MemoryStoreTest, CountIsPerTableAndTablesAreIndependent) {
  MemoryStore store;
  ASSERT_TRUE(store.Put(Table::kBindings, "k", "binding", kT0 + absl::Seconds(1)).ok());
  ASSERT_TRUE(store.Put(Table::kBindings, "k2", "binding2", absl::InfiniteFuture()).ok());
  ASSERT_TRUE(store.Put(Table::kSessions, "k", "session", kT0 + absl::Seconds(1)).ok());
  ASSERT_TRUE(store.Put(Table::kSessionWorker, "w\x1fk", "", absl::InfiniteFuture()).ok());

  EXPECT_EQ(store.Count(Table::kBindings), 2u);
  EXPECT_EQ(store.Count(Table::kSessions), 1u);
  EXPECT_EQ(store.Count(Table::kSessionWorker), 1u);
  EXPECT_EQ(store.Count(Table::kBindingIdentity), 0u);
  EXPECT_EQ(store.Count(Table::kSessionCall), 0u);

  EXPECT_EQ(store.Get(Table::kBindings, "k").value(), "binding");
  EXPECT_EQ(store.Get(Table::kSessions, "k").value(), "session");
  EXPECT_EQ(store.Get(Table::kBindingIdentity, "k").status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(store.Delete(Table::kBindings, "k").ok());
  EXPECT_EQ(store.Get(Table::kSessions, "k").value(), "session");

  // Expiring one table leaves the other alone.
  EXPECT_THAT(TakeKeys(store, Table::kSessions, kT0 + absl::Seconds(5), 10), ElementsAre("k"));
  EXPECT_EQ(store.Count(Table::kBindings), 1u);
  EXPECT_THAT(ListKeys(store, Table::kSessionWorker, "", "", 10), ElementsAre("w\x1fk"));
}

TEST(MemoryStoreTest, ConcurrentPutsAndDeletesOfDistinctKeys) {
  MemoryStore store;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string key = absl::StrCat("t", t, "-", i);
        const absl::Time expiry = i % 3 == 0 ? absl::InfiniteFuture() : kT0 + absl::Seconds(i);
        ASSERT_TRUE(store.Put(Table::kBindings, key, key, expiry).ok());
        ASSERT_TRUE(store.Put(Table::kSessions, key, key, expiry).ok());
        // Delete every other key again.
        if (i % 2 == 1) {
          ASSERT_TRUE(store.Delete(Table::kBindings, key).ok());
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(store.Count(Table::kBindings), static_cast<size_t>(kThreads * kPerThread / 2));
  EXPECT_EQ(store.Count(Table::kSessions), static_cast<size_t>(kThreads * kPerThread));
  // Deleted keys left nothing behind in the expiry index; surviving ones all expire exactly once.
  auto expired = store.TakeExpired(Table::kBindings, kT0 + absl::Hours(1), 1'000'000);
  ASSERT_TRUE(expired.ok());
  size_t expected_expiring = 0;
  for (int i = 0; i < kPerThread; i += 2) {
    if (i % 3 != 0) ++expected_expiring;
  }
  EXPECT_EQ(expired->size(), expected_expiring * kThreads);
  EXPECT_EQ(store.Count(Table::kBindings), static_cast<size_t>(kThreads * kPerThread / 2) - expected_expiring * kThreads);
}

}  // namespace
}  // namespace latchkey::control
