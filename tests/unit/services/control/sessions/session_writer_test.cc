#include "services/control/sessions/session_writer.h"

#include <string>
#include <thread>

#include "common/time/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/services/control/sessions/session_test_util.h"

namespace latchkey::control {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;
using session_test::kT0;
using session_test::LiveSession;
using session_test::Types;

class SessionWriterTest : public session_test::SessionCoreFixture {
 protected:
  // Writes `id` once through the store directly, as another replica would.
  void ConcurrentWrite(const std::string& id, const std::string& callee_tag) {
    auto current = store_.Get(id);
    ASSERT_TRUE(current.ok()) << current.status();
    current->mutable_callee()->set_tag(callee_tag);
    SessionWrite write;
    write.expected_version = current->version();
    ASSERT_TRUE(store_.Write(*current, write).ok());
  }

  std::vector<std::string> ExpiredIds(absl::Time at) {
    auto expired = store_.ListExpired(at, 100);
    EXPECT_TRUE(expired.ok()) << expired.status();
    std::vector<std::string> ids;
    if (expired.ok()) {
      for (const v1::Session& session : *expired) ids.push_back(session.session_id());
    }
    return ids;
  }
};

TEST_F(SessionWriterTest, WriteCreatesVersionOneWithTheSessionsExpiry) {
  const v1::Session stored = Put(LiveSession("s1"));
  EXPECT_EQ(stored.version(), 1u);
  // Offered at kT0: looked at again after the offer timeout (10 min by default).
  EXPECT_THAT(ExpiredIds(kT0 + absl::Minutes(10) - absl::Nanoseconds(1)), IsEmpty());
  EXPECT_THAT(ExpiredIds(kT0 + absl::Minutes(10)), ElementsAre("s1"));
}

TEST_F(SessionWriterTest, WriteWithAStaleVersionIsAborted) {
  const v1::Session first = Put(LiveSession("s1"));
  v1::Session changed = first;
  changed.mutable_callee()->set_tag("tt");
  auto second = writer_.Write(changed);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->version(), 2u);

  v1::Session stale = first;  // still version 1
  stale.mutable_callee()->set_tag("lost");
  auto refused = writer_.Write(stale);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(refused.status().message()), StartsWith("version:"));
  EXPECT_EQ(Stored("s1").callee().tag(), "tt");
  EXPECT_EQ(Stored("s1").version(), 2u);
}

TEST_F(SessionWriterTest, WritePassesTheOwnerLimitToTheStore) {
  Put(LiveSession("s1", "w1", "pbx/a"));
  v1::Session second = LiveSession("s2", "w1", "pbx/a");
  auto refused = writer_.Write(second, /*max_live_per_owner=*/1);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()), StartsWith("max_sessions_per_pbx:"));
  EXPECT_TRUE(writer_.Write(second, /*max_live_per_owner=*/2).ok());
}

TEST_F(SessionWriterTest, ChangeReappliesTheChangeAfterAConcurrentWrite) {
  Put(LiveSession("s1"));
  int calls = 0;
  std::vector<uint64_t> seen_versions;
  auto changed = writer_.Change("s1", [&](v1::Session& s) -> absl::Status {
    ++calls;
    seen_versions.push_back(s.version());
    if (calls == 1) ConcurrentWrite("s1", "from-the-other-replica");
    s.mutable_caller()->mutable_stats()->set_relatch_count(s.caller().stats().relatch_count() + 1);
    return absl::OkStatus();
  });
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(calls, 2);
  EXPECT_THAT(seen_versions, ElementsAre(1u, 2u));
  EXPECT_EQ(changed->version(), 3u);
  // Both writes are in the record: neither was lost.
  const v1::Session stored = Stored("s1");
  EXPECT_EQ(stored.version(), 3u);
  EXPECT_EQ(stored.callee().tag(), "from-the-other-replica");
  EXPECT_EQ(stored.caller().stats().relatch_count(), 1u);
}

TEST_F(SessionWriterTest, ChangeGivesUpWithAbortedWhenEveryAttemptLoses) {
  Put(LiveSession("s1"));
  int calls = 0;
  auto changed = writer_.Change("s1", [&](v1::Session&) -> absl::Status {
    ++calls;
    ConcurrentWrite("s1", absl::StrCat("t", calls));
    return absl::OkStatus();
  });
  EXPECT_EQ(changed.status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(calls, kMaxWriteAttempts);
  EXPECT_EQ(Stored("s1").version(), 1u + kMaxWriteAttempts);
}

TEST_F(SessionWriterTest, ChangeStopsAtTheChangesError) {
  Put(LiveSession("s1"));
  auto changed = writer_.Change("s1", [&](v1::Session& s) -> absl::Status {
    s.mutable_callee()->set_tag("never written");
    return absl::FailedPreconditionError("side: no");
  });
  EXPECT_EQ(changed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(changed.status().message(), "side: no");
  EXPECT_EQ(Stored("s1").version(), 1u);
  EXPECT_EQ(Stored("s1").callee().tag(), "");
}

TEST_F(SessionWriterTest, ChangeOfAnUnknownSessionIsNotFound) {
  bool called = false;
  auto changed = writer_.Change("nope", [&](v1::Session&) -> absl::Status {
    called = true;
    return absl::OkStatus();
  });
  EXPECT_EQ(changed.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(changed.status().message()), StartsWith("session_id:"));
  EXPECT_FALSE(called);
}

TEST_F(SessionWriterTest, EndTellsTheRelayOnceAndWritesTheFinalFigures) {
  v1::Session session = LiveSession("s1");
  session.mutable_caller()->mutable_stats()->set_packets_in(1);  // an older figure
  Put(session);
  metrics_.sessions_active->Increment();  // as Allocate did
  v1::DeleteRelaySessionResponse figures;
  figures.mutable_caller()->set_packets_in(700);
  figures.mutable_callee()->set_bytes_out(9000);
  relay_.SetFinalFigures(figures);
  now_ = kT0 + absl::Seconds(5);

  auto ended = writer_.End(Stored("s1"), v1::SESSION_EVENT_TYPE_RELEASED, /*tell_worker=*/true);
  ASSERT_TRUE(ended.ok()) << ended.status();

  const auto deletes = relay_.Calls(RelayOp::kDelete);
  ASSERT_EQ(deletes.size(), 1u);
  EXPECT_EQ(deletes[0].worker_id, "w1");
  EXPECT_EQ(deletes[0].session_id, "s1");
  EXPECT_EQ(deletes[0].reason, v1::SESSION_EVENT_TYPE_RELEASED);
  EXPECT_EQ(deletes[0].ports, kPortsPerStream);  // one stream

  const v1::Session stored = Stored("s1");
  EXPECT_EQ(stored.state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(stored.end_reason(), v1::SESSION_EVENT_TYPE_RELEASED);
  EXPECT_EQ(stored.version(), 2u);
  EXPECT_EQ(stored.caller().stats().packets_in(), 700u);
  EXPECT_EQ(stored.callee().stats().bytes_out(), 9000u);
  EXPECT_EQ(FromProto(stored.updated_at()), now_);
  EXPECT_EQ(ended->version(), 2u);

  auto events = Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type(), v1::SESSION_EVENT_TYPE_RELEASED);
  EXPECT_EQ(events[0].session().state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(events[0].session().version(), 2u);
  EXPECT_EQ(FromProto(events[0].time()), now_);
  EXPECT_EQ(metrics_.sessions_active->Value(), 0.0);
  EXPECT_EQ(metrics_.session_ends[v1::SESSION_EVENT_TYPE_RELEASED]->Value(), 1.0);

  // Kept for the retention (30 s), then due for removal; the call key is free at once.
  EXPECT_THAT(ExpiredIds(now_ + absl::Seconds(29)), IsEmpty());
  EXPECT_THAT(ExpiredIds(now_ + absl::Seconds(30)), ElementsAre("s1"));
  EXPECT_EQ(store_.FindLive("pbx/a", "call-s1", "ft-s1").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SessionWriterTest, EndWithoutTheWorkersConfirmationKeepsTheRecordedFigures) {
  v1::Session session = LiveSession("s1");
  session.mutable_caller()->mutable_stats()->set_packets_in(5);
  Put(session);
  relay_.SetDeleteConfirms(false);
  v1::DeleteRelaySessionResponse figures;
  figures.mutable_caller()->set_packets_in(700);
  relay_.SetFinalFigures(figures);
  ASSERT_TRUE(writer_.End(Stored("s1"), v1::SESSION_EVENT_TYPE_EXPIRED, true).ok());
  EXPECT_EQ(relay_.Count(RelayOp::kDelete), 1u);
  EXPECT_EQ(Stored("s1").caller().stats().packets_in(), 5u);
  EXPECT_EQ(Stored("s1").end_reason(), v1::SESSION_EVENT_TYPE_EXPIRED);
}

TEST_F(SessionWriterTest, EndWithoutTellingTheWorkerNeverCallsTheRelay) {
  Put(LiveSession("s1"));
  metrics_.sessions_active->Increment();
  auto ended = writer_.End(Stored("s1"), v1::SESSION_EVENT_TYPE_WORKER_LOST, /*tell_worker=*/false);
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_TRUE(relay_.Calls().empty());
  EXPECT_EQ(Stored("s1").state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(Stored("s1").end_reason(), v1::SESSION_EVENT_TYPE_WORKER_LOST);
  EXPECT_THAT(Types(Events()), ElementsAre(v1::SESSION_EVENT_TYPE_WORKER_LOST));
  EXPECT_EQ(metrics_.sessions_active->Value(), 0.0);
  EXPECT_EQ(metrics_.session_ends[v1::SESSION_EVENT_TYPE_WORKER_LOST]->Value(), 1.0);
}

TEST_F(SessionWriterTest, EndOfASessionAnotherWriterEndedReturnsItWithoutASecondEvent) {
  Put(LiveSession("s1"));
  metrics_.sessions_active->Increment();
  const v1::Session stale = Stored("s1");  // read by both writers while live
  ASSERT_TRUE(writer_.End(stale, v1::SESSION_EVENT_TYPE_EXPIRED, false).ok());
  ASSERT_EQ(Events().size(), 1u);

  auto again = writer_.End(stale, v1::SESSION_EVENT_TYPE_RELEASED, false);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(again->end_reason(), v1::SESSION_EVENT_TYPE_EXPIRED);  // as the first writer left it
  EXPECT_EQ(again->version(), 2u);
  EXPECT_EQ(Stored("s1").version(), 2u);
  EXPECT_THAT(Events(), IsEmpty());
  EXPECT_EQ(metrics_.sessions_active->Value(), 0.0);
  EXPECT_EQ(metrics_.session_ends[v1::SESSION_EVENT_TYPE_RELEASED]->Value(), 0.0);
  EXPECT_EQ(metrics_.session_ends[v1::SESSION_EVENT_TYPE_EXPIRED]->Value(), 1.0);
}

// Another replica ends the session while this writer waits for the worker's answer.
TEST_F(SessionWriterTest, EndRacingAnotherReplicasEndPublishesOnce) {
  Put(LiveSession("s1"));
  metrics_.sessions_active->Increment();
  SessionWriter other(&store_, &relay_, &metrics_, SessionTimeouts{}, [this] { return now_; });
  relay_.BlockCall(RelayOp::kDelete, 0);
  absl::StatusOr<v1::Session> mine;
  std::thread releasing([&] { mine = writer_.End(Stored("s1"), v1::SESSION_EVENT_TYPE_RELEASED, true); });
  ASSERT_TRUE(relay_.WaitBlocked(RelayOp::kDelete, 0));
  ASSERT_TRUE(other.End(Stored("s1"), v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT, false).ok());
  relay_.Release(RelayOp::kDelete, 0);
  releasing.join();

  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_EQ(mine->end_reason(), v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT);
  EXPECT_EQ(Stored("s1").version(), 2u);
  EXPECT_THAT(Types(Events()), ElementsAre(v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT));
  EXPECT_EQ(metrics_.sessions_active->Value(), 0.0);
}

// A change that is not an end (a latch report) lands while the worker is told: the end applies on
// top of it.
TEST_F(SessionWriterTest, EndAppliesOnTopOfAConcurrentChange) {
  Put(LiveSession("s1"));
  relay_.BlockCall(RelayOp::kDelete, 0);
  absl::StatusOr<v1::Session> ended;
  std::thread releasing([&] { ended = writer_.End(Stored("s1"), v1::SESSION_EVENT_TYPE_RELEASED, true); });
  ASSERT_TRUE(relay_.WaitBlocked(RelayOp::kDelete, 0));
  ConcurrentWrite("s1", "tt-late");
  relay_.Release(RelayOp::kDelete, 0);
  releasing.join();
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->version(), 3u);
  EXPECT_EQ(ended->callee().tag(), "tt-late");
  EXPECT_EQ(Stored("s1").state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(relay_.Count(RelayOp::kDelete), 1u);
  EXPECT_THAT(Types(Events()), ElementsAre(v1::SESSION_EVENT_TYPE_RELEASED));
}

TEST_F(SessionWriterTest, EndOfARemovedSessionIsNotFound) {
  const v1::Session stored = Put(LiveSession("s1"));
  ASSERT_TRUE(store_.Remove("s1", stored.version()).ok());
  auto ended = writer_.End(stored, v1::SESSION_EVENT_TYPE_RELEASED, false);
  EXPECT_EQ(ended.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Events(), IsEmpty());
}

TEST_F(SessionWriterTest, PublishSetsTypeSessionAndTime) {
  const v1::Session stored = Put(LiveSession("s1"));
  now_ = kT0 + absl::Seconds(3);
  SessionEvent contested;
  contested.set_side(v1::SIDE_CALLEE);
  *contested.mutable_source() = session_test::Address("198.51.100.99", 4000);
  writer_.Publish(v1::SESSION_EVENT_TYPE_LATCH_CONTESTED, stored, contested);
  SessionEvent timed;
  *timed.mutable_time() = ToProto(kT0 + absl::Seconds(1));
  writer_.Publish(v1::SESSION_EVENT_TYPE_LATCHED, stored, timed);
  auto events = Events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type(), v1::SESSION_EVENT_TYPE_LATCH_CONTESTED);
  EXPECT_EQ(events[0].session().session_id(), "s1");
  EXPECT_EQ(events[0].side(), v1::SIDE_CALLEE);
  EXPECT_EQ(events[0].source().ip(), "198.51.100.99");
  EXPECT_EQ(FromProto(events[0].time()), now_);
  EXPECT_EQ(FromProto(events[1].time()), kT0 + absl::Seconds(1));  // the event's own time is kept
  EXPECT_EQ(writer_.Now(), now_);
}

}  // namespace
}  // namespace latchkey::control
