#include "services/control/events/event_feed.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/control/store/memory_change_log.h"

namespace latchkey::control {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A store's change log of ints, as a store keeps it (appended under the store's lock).
class FakeLog {
 public:
  explicit FakeLog(uint64_t capacity) : capacity_(capacity), log_(std::make_unique<MemoryChangeLog<int>>(capacity)) {}
  void Append(int value) {
    absl::MutexLock lock(&mu_);
    log_->Append(value);
  }
  absl::StatusOr<LogPage<int>> Read(const std::string& after, size_t limit) {
    absl::MutexLock lock(&mu_);
    ++reads_;
    return log_->Read("resume_token", after, limit);
  }
  absl::StatusOr<std::string> Tail() {
    absl::MutexLock lock(&mu_);
    return log_->Tail();
  }
  int reads() {
    absl::MutexLock lock(&mu_);
    return reads_;
  }
  // A store replaced by an empty one (a wiped Redis): no old position is valid any more.
  void Wipe() {
    absl::MutexLock lock(&mu_);
    log_ = std::make_unique<MemoryChangeLog<int>>(capacity_);
  }

 private:
  absl::Mutex mu_;
  const uint64_t capacity_;
  std::unique_ptr<MemoryChangeLog<int>> log_ ABSL_GUARDED_BY(mu_);
  int reads_ ABSL_GUARDED_BY(mu_) = 0;
};

class EventFeedTest : public ::testing::Test {
 protected:
  void Start(size_t capacity, uint64_t log_capacity = 1000) {
    log_ = std::make_unique<FakeLog>(log_capacity);
    EventFeedOptions options;
    options.capacity = capacity;
    options.poll = absl::Milliseconds(5);
    options.page = 4;
    options.name = "test";
    FakeLog* log = log_.get();
    feed_ = std::make_unique<EventFeed<int>>(
        options, [log](const std::string& after, size_t limit) { return log->Read(after, limit); },
        [log] { return log->Tail(); });
    feed_->Start();
  }

  // Reads until `count` values arrived or 5 s passed.
  static std::vector<int> ReadValues(EventFeed<int>::Reader& reader, size_t count) {
    std::vector<int> out;
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (out.size() < count && absl::Now() < deadline) {
      auto entries = reader.Next(100, absl::Milliseconds(50));
      EXPECT_TRUE(entries.ok()) << entries.status();
      if (!entries.ok()) break;
      for (const auto& e : *entries) out.push_back(e.value);
    }
    return out;
  }

  // Waits (up to 5 s) until a reader opened at "" reads from the feed's memory.
  static void Settle(EventFeed<int>& feed, EventFeed<int>::Reader& reader) {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (!feed.Reached(reader, reader.position()) && absl::Now() < deadline) {
      ASSERT_TRUE(reader.Next(1, absl::Milliseconds(10)).ok());
    }
    ASSERT_TRUE(feed.Reached(reader, reader.position()));
  }

  std::unique_ptr<FakeLog> log_;
  std::unique_ptr<EventFeed<int>> feed_;
};

TEST_F(EventFeedTest, AReaderFromNowSeesLaterEntriesOnceInOrder) {
  Start(100);
  log_->Append(1);  // before the reader: not seen (the feed may or may not have started yet)
  auto reader = feed_->Open("");
  // The reader settles on the end of the log before anything new is appended.
  Settle(*feed_, *reader);
  for (int i = 2; i <= 11; ++i) {
    log_->Append(i);
    feed_->Poke();
  }
  std::vector<int> values = ReadValues(*reader, 10);
  if (!values.empty() && values.front() == 1) values.erase(values.begin());  // appended as the feed started
  EXPECT_THAT(values, ElementsAre(2, 3, 4, 5, 6, 7, 8, 9, 10, 11));
  auto more = reader->Next(10, absl::Milliseconds(30));
  ASSERT_TRUE(more.ok());
  EXPECT_THAT(*more, IsEmpty());
  feed_->Close(reader);
}

TEST_F(EventFeedTest, AnOldPositionCatchesUpFromTheStoreThenFollowsMemoryWithoutGapOrRepeat) {
  log_ = nullptr;
  Start(100);
  const std::string start = log_->Tail().value();
  for (int i = 1; i <= 9; ++i) log_->Append(i);
  // A second feed started now keeps nothing from before: its readers at `start` read the store.
  EventFeedOptions options;
  options.capacity = 100;
  options.poll = absl::Milliseconds(5);
  options.page = 4;
  FakeLog* log = log_.get();
  EventFeed<int> late(
      options, [log](const std::string& after, size_t limit) { return log->Read(after, limit); },
      [log] { return log->Tail(); });
  late.Start();
  auto opened = late.Open("");
  Settle(late, *opened);  // the feed has started, after entry 9
  auto reader = late.Open(start);
  const int reads_before = log_->reads();
  std::vector<int> values = ReadValues(*reader, 9);
  EXPECT_GT(log_->reads(), reads_before) << "caught up from the store";
  for (int i = 10; i <= 14; ++i) log_->Append(i);
  late.Poke();
  std::vector<int> rest = ReadValues(*reader, 5);
  values.insert(values.end(), rest.begin(), rest.end());
  EXPECT_THAT(values, ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14));
  late.Close(reader);
  late.Close(opened);
  late.Stop();
}

TEST_F(EventFeedTest, AReaderFallingCapacityBehindIsCutOffOnceAndOthersCarryOn) {
  Start(5);
  auto slow = feed_->Open("");
  auto fast = feed_->Open("");
  Settle(*feed_, *slow);
  Settle(*feed_, *fast);
  int cut_offs = 0;
  slow->SetOnCutOff([&] { ++cut_offs; });
  std::vector<int> seen;
  for (int i = 1; i <= 20; ++i) {
    log_->Append(i);
    feed_->Poke();
    auto got = ReadValues(*fast, 1);
    seen.insert(seen.end(), got.begin(), got.end());
  }
  EXPECT_EQ(seen.size(), 20u);
  auto next = slow->Next(10, absl::ZeroDuration());
  EXPECT_EQ(next.status().code(), absl::StatusCode::kResourceExhausted) << next.status();
  EXPECT_EQ(cut_offs, 1);
  feed_->Close(slow);
  feed_->Close(fast);
}

// The keepalive leader's reader: never cut off, it reads on from the store's log.
TEST_F(EventFeedTest, AFallBackReaderIsNeverCutOffAndMissesNothing) {
  Start(5);
  auto reader = feed_->Open("", /*fall_back_to_store=*/true);
  Settle(*feed_, *reader);
  for (int i = 1; i <= 30; ++i) {
    log_->Append(i);
    feed_->Poke();
  }
  // Let the feed tail all 30 (dropping all but 5 from memory) before the reader reads.
  auto tailed = feed_->Open("");
  Settle(*feed_, *tailed);
  std::vector<int> values = ReadValues(*reader, 30);
  ASSERT_EQ(values.size(), 30u);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(values[i], i + 1);
  EXPECT_FALSE(reader->ended());
}

// The store replaced under the feed: readers in memory must re-list, and nobody joins the old
// entries; new readers follow the new log.
TEST_F(EventFeedTest, WhenTheFeedLosesItsPlaceReadersInMemoryAreToldAndNewOnesFollowTheNewLog) {
  Start(100);
  auto old_reader = feed_->Open("");
  Settle(*feed_, *old_reader);
  log_->Append(1);
  feed_->Poke();
  ASSERT_THAT(ReadValues(*old_reader, 1), ElementsAre(1));
  const std::string old_position = old_reader->position();
  log_->Wipe();
  log_->Append(100);
  feed_->Poke();
  absl::StatusCode code = absl::StatusCode::kOk;
  for (int i = 0; i < 100 && code == absl::StatusCode::kOk; ++i) code = old_reader->Next(10, absl::Milliseconds(20)).status().code();
  EXPECT_EQ(code, absl::StatusCode::kOutOfRange);
  auto resumed = feed_->Open(old_position);
  EXPECT_EQ(resumed->Next(10, absl::Milliseconds(50)).status().code(), absl::StatusCode::kOutOfRange);
  auto fresh = feed_->Open("");
  Settle(*feed_, *fresh);
  log_->Append(101);
  feed_->Poke();
  EXPECT_THAT(ReadValues(*fresh, 1), ElementsAre(101));
}

TEST_F(EventFeedTest, APositionTheStoreNoLongerHoldsIsOutOfRange) {
  Start(100, /*log_capacity=*/3);
  const std::string start = log_->Tail().value();
  for (int i = 1; i <= 10; ++i) log_->Append(i);
  auto reader = feed_->Open(start);
  auto next = reader->Next(10, absl::Milliseconds(50));
  EXPECT_EQ(next.status().code(), absl::StatusCode::kOutOfRange) << next.status();
  auto bogus = feed_->Open("not-a-position");
  EXPECT_EQ(bogus->Next(10, absl::Milliseconds(50)).status().code(), absl::StatusCode::kOutOfRange);
}

TEST_F(EventFeedTest, ShutdownWakesReaders) {
  Start(100);
  auto reader = feed_->Open("");
  Settle(*feed_, *reader);
  feed_->Shutdown();
  const absl::Time before = absl::Now();
  // UNAVAILABLE: a watcher resumes on another replica.
  EXPECT_EQ(reader->Next(10, absl::Seconds(5)).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - before, absl::Seconds(1));
}

}  // namespace
}  // namespace latchkey::control
