#include "services/control/sessions/session_sweeper.h"

#include <atomic>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/time/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/services/control/sessions/session_test_util.h"

namespace latchkey::control {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using session_test::kT0;
using session_test::LiveSession;
using session_test::Types;

class SessionSweeperTest : public session_test::SessionCoreFixture {
 protected:
  SessionSweeperTest() : sweeper_(&store_, &writer_) {}

  v1::Session Answered(const std::string& id, absl::Time created, absl::Time updated) {
    v1::Session session = LiveSession(id, "w1", "pbx/a", created);
    session.set_state(v1::SESSION_STATE_ANSWERED);
    *session.mutable_answered_at() = ToProto(created);
    *session.mutable_updated_at() = ToProto(updated);
    return session;
  }

  SessionSweeper sweeper_;
};

TEST_F(SessionSweeperTest, EndsAnOfferPastTheOfferTimeout) {
  Put(LiveSession("s1"));  // offered at kT0; offer timeout 10 min
  metrics_.sessions_active->Increment();
  now_ = kT0 + absl::Minutes(10) - absl::Seconds(1);
  EXPECT_EQ(sweeper_.SweepExpired(), 0u);
  EXPECT_EQ(Stored("s1").state(), v1::SESSION_STATE_OFFERED);

  now_ = kT0 + absl::Minutes(10);
  EXPECT_EQ(sweeper_.SweepExpired(), 1u);
  EXPECT_EQ(Stored("s1").state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(Stored("s1").end_reason(), v1::SESSION_EVENT_TYPE_EXPIRED);
  const auto deletes = relay_.Calls(RelayOp::kDelete);
  ASSERT_EQ(deletes.size(), 1u);
  EXPECT_EQ(deletes[0].session_id, "s1");
  EXPECT_EQ(deletes[0].reason, v1::SESSION_EVENT_TYPE_EXPIRED);
  EXPECT_THAT(Types(Events()), ElementsAre(v1::SESSION_EVENT_TYPE_EXPIRED));
  EXPECT_EQ(metrics_.sessions_active->Value(), 0.0);
  EXPECT_EQ(metrics_.session_ends[v1::SESSION_EVENT_TYPE_EXPIRED]->Value(), 1.0);
  // Nothing more to do.
  EXPECT_EQ(sweeper_.SweepExpired(), 0u);
  EXPECT_EQ(relay_.Count(RelayOp::kDelete), 1u);
}

TEST_F(SessionSweeperTest, EndsAnAnsweredSessionPastTheIdleTimeout) {
  Put(Answered("s1", kT0, kT0 + absl::Minutes(5)));  // idle timeout 1 h
  now_ = kT0 + absl::Minutes(64);
  EXPECT_EQ(sweeper_.SweepExpired(), 0u);
  now_ = kT0 + absl::Minutes(65);
  EXPECT_EQ(sweeper_.SweepExpired(), 1u);
  EXPECT_EQ(Stored("s1").end_reason(), v1::SESSION_EVENT_TYPE_EXPIRED);
}

TEST_F(SessionSweeperTest, EndsSessionsPastTheirFinalDeadlineWithFinalTimeout) {
  v1::Session short_lived = LiveSession("short");
  *short_lived.mutable_options()->mutable_final_timeout() = ToProto(absl::Minutes(3));
  Put(short_lived);
  // Active a minute ago, but created 12 h ago (the default final timeout).
  Put(Answered("old", kT0 - absl::Hours(12) + absl::Minutes(4), kT0 + absl::Minutes(3)));
  now_ = kT0 + absl::Minutes(4);
  EXPECT_EQ(sweeper_.SweepExpired(), 2u);
  EXPECT_EQ(Stored("short").end_reason(), v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT);
  EXPECT_EQ(Stored("old").end_reason(), v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT);
  for (const RelayCall& call : relay_.Calls(RelayOp::kDelete)) {
    EXPECT_EQ(call.reason, v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT);
  }
  EXPECT_EQ(metrics_.session_ends[v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT]->Value(), 2.0);
}

TEST_F(SessionSweeperTest, RemovesEndedSessionsAfterTheirRetention) {
  Put(LiveSession("s1"));
  now_ = kT0 + absl::Minutes(1);
  ASSERT_TRUE(writer_.End(Stored("s1"), v1::SESSION_EVENT_TYPE_RELEASED, false).ok());
  Events();
  now_ = kT0 + absl::Minutes(1) + absl::Seconds(29);
  EXPECT_EQ(sweeper_.SweepExpired(), 0u);
  EXPECT_TRUE(store_.Get("s1").ok());
  now_ = kT0 + absl::Minutes(1) + absl::Seconds(30);
  EXPECT_EQ(sweeper_.SweepExpired(), 0u);  // removed, not ended: not counted
  EXPECT_EQ(store_.Get("s1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Events(), IsEmpty());
  EXPECT_TRUE(relay_.Calls().empty());
}

TEST_F(SessionSweeperTest, LeavesSessionsThatWereRefreshed) {
  Put(LiveSession("s1"));
  // Signalling refreshed it at +9 min: its next look is at +19 min.
  now_ = kT0 + absl::Minutes(9);
  ASSERT_TRUE(writer_
                  .Change("s1",
                          [&](v1::Session& s) {
                            *s.mutable_updated_at() = ToProto(now_);
                            return absl::OkStatus();
                          })
                  .ok());
  now_ = kT0 + absl::Minutes(10);
  EXPECT_EQ(sweeper_.SweepExpired(), 0u);
  EXPECT_EQ(Stored("s1").state(), v1::SESSION_STATE_OFFERED);
  // A record whose stored expiry is older than what it says (written with other timeouts) is judged
  // by the record.
  v1::Session stale = Stored("s1");
  SessionWrite write;
  write.expected_version = stale.version();
  write.expires_at = kT0;
  ASSERT_TRUE(store_.Write(stale, write).ok());
  EXPECT_EQ(sweeper_.SweepExpired(), 0u);
  EXPECT_EQ(Stored("s1").state(), v1::SESSION_STATE_OFFERED);
  EXPECT_TRUE(relay_.Calls().empty());
  now_ = kT0 + absl::Minutes(19);
  EXPECT_EQ(sweeper_.SweepExpired(), 1u);
}

TEST_F(SessionSweeperTest, SweepsMoreThanOneBatch) {
  constexpr int kSessions = 1030;  // batches of 1024
  for (int i = 0; i < kSessions; ++i) Put(LiveSession(absl::StrCat("s", 10000 + i)));
  now_ = kT0 + absl::Hours(1);
  EXPECT_EQ(sweeper_.SweepExpired(), static_cast<size_t>(kSessions));
  EXPECT_EQ(Events().size(), static_cast<size_t>(kSessions));
}

TEST_F(SessionSweeperTest, TwoSweepersOnOneStoreEndEachSessionOnce) {
  constexpr int kSessions = 200;
  for (int i = 0; i < kSessions; ++i) Put(LiveSession(absl::StrCat("s", 1000 + i)));
  SessionWriter other_writer(&store_, &relay_, &metrics_, SessionTimeouts{}, [this] { return now_; });
  SessionSweeper other(&store_, &other_writer);
  now_ = kT0 + absl::Minutes(10);
  std::thread a([&] { sweeper_.SweepExpired(); });
  other.SweepExpired();
  a.join();

  for (int i = 0; i < kSessions; ++i) {
    const v1::Session stored = Stored(absl::StrCat("s", 1000 + i));
    EXPECT_EQ(stored.state(), v1::SESSION_STATE_ENDED);
    EXPECT_EQ(stored.version(), 2u);  // one end each
  }
  EXPECT_EQ(Events().size(), static_cast<size_t>(kSessions));
  EXPECT_EQ(metrics_.session_ends[v1::SESSION_EVENT_TYPE_EXPIRED]->Value(), static_cast<double>(kSessions));
  // Retention over: both remove what is left, each record once.
  now_ = kT0 + absl::Minutes(11);
  std::thread b([&] { sweeper_.SweepExpired(); });
  other.SweepExpired();
  b.join();
  auto left = store_.List(SessionFilter{}, "", 10);
  ASSERT_TRUE(left.ok());
  EXPECT_THAT(left->sessions, IsEmpty());
}

// BUG (services/control/sessions/session_sweeper.cc:32 with session_writer.cc:31-37): SweepExpired
// promises to return "how many sessions it ended", but counts End(...).ok(), and End returns OK with
// the other writer's record when another sweeper (or any writer) ended the session first. Two
// sweepers racing on one session both report it: the sum over replicas exceeds the sessions ended.
// End also tells the worker again before it finds out (a second Delete for one session). Expected:
// a sweeper that lost the race does not count the session (and, ideally, End re-reads before the
// relay call, or reports that it did not end the session itself).
TEST_F(SessionSweeperTest, TwoSweepersRacingOnOneSessionCountItOnce) {
  Put(LiveSession("s1"));
  SessionWriter other_writer(&store_, &relay_, &metrics_, SessionTimeouts{}, [this] { return now_; });
  SessionSweeper other(&store_, &other_writer);
  now_ = kT0 + absl::Minutes(10);
  relay_.BlockCall(RelayOp::kDelete, 0);  // sweeper A listed s1 and is telling its worker
  size_t by_a = 0;
  std::thread a([&] { by_a = sweeper_.SweepExpired(); });
  ASSERT_TRUE(relay_.WaitBlocked(RelayOp::kDelete, 0));
  const size_t by_b = other.SweepExpired();
  relay_.Release(RelayOp::kDelete, 0);
  a.join();

  EXPECT_EQ(Types(Events()), std::vector<v1::SessionEventType>{v1::SESSION_EVENT_TYPE_EXPIRED});
  EXPECT_EQ(Stored("s1").version(), 2u);
  EXPECT_EQ(by_a + by_b, 1u);
  // Both told the worker (each read the session live); the second delete finds nothing there.
  EXPECT_EQ(relay_.Count(RelayOp::kDelete), 2u);
}

}  // namespace
}  // namespace latchkey::control
