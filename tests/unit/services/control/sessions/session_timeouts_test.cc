#include "services/control/sessions/session_timeouts.h"

#include "common/time/proto_time.h"
#include "gtest/gtest.h"

namespace latchkey::control {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

v1::Session SessionIn(v1::SessionState state, absl::Time created, absl::Time updated) {
  v1::Session session;
  session.set_state(state);
  *session.mutable_created_at() = ToProto(created);
  *session.mutable_updated_at() = ToProto(updated);
  return session;
}

SessionTimeouts Timeouts() {
  SessionTimeouts timeouts;
  timeouts.offer = absl::Minutes(3);
  timeouts.idle = absl::Minutes(30);
  timeouts.final = absl::Hours(2);
  timeouts.ended_retention = absl::Seconds(45);
  return timeouts;
}

TEST(SessionTimeoutsTest, DefaultsAreTheDocumentedOnes) {
  const SessionTimeouts timeouts;
  EXPECT_EQ(timeouts.offer, absl::Minutes(10));
  EXPECT_EQ(timeouts.idle, absl::Hours(1));
  EXPECT_EQ(timeouts.final, absl::Hours(12));
  EXPECT_EQ(timeouts.ended_retention, absl::Seconds(30));
}

TEST(SessionTimeoutsTest, OfferedSessionExpiresAnOfferTimeoutAfterItsLastChange) {
  const v1::Session session = SessionIn(v1::SESSION_STATE_OFFERED, kT0, kT0 + absl::Minutes(1));
  EXPECT_EQ(ExpiryOf(session, Timeouts()), kT0 + absl::Minutes(4));
}

TEST(SessionTimeoutsTest, AnsweredSessionExpiresAnIdleTimeoutAfterItsLastChange) {
  const v1::Session session = SessionIn(v1::SESSION_STATE_ANSWERED, kT0, kT0 + absl::Minutes(10));
  EXPECT_EQ(ExpiryOf(session, Timeouts()), kT0 + absl::Minutes(40));
}

TEST(SessionTimeoutsTest, EndedSessionIsKeptForItsRetention) {
  v1::Session session = SessionIn(v1::SESSION_STATE_ENDED, kT0, kT0 + absl::Hours(5));
  EXPECT_EQ(ExpiryOf(session, Timeouts()), kT0 + absl::Hours(5) + absl::Seconds(45));
  // Past the final deadline too: retention is counted from the end, never capped by it.
  EXPECT_GT(ExpiryOf(session, Timeouts()), FinalDeadlineOf(session, Timeouts()));
}

TEST(SessionTimeoutsTest, FinalDeadlineCapsOfferAndIdle) {
  const v1::Session answered = SessionIn(v1::SESSION_STATE_ANSWERED, kT0, kT0 + absl::Minutes(100));
  EXPECT_EQ(FinalDeadlineOf(answered, Timeouts()), kT0 + absl::Hours(2));
  EXPECT_EQ(ExpiryOf(answered, Timeouts()), kT0 + absl::Hours(2));  // not +130 min
  const v1::Session offered = SessionIn(v1::SESSION_STATE_OFFERED, kT0, kT0 + absl::Minutes(119));
  EXPECT_EQ(ExpiryOf(offered, Timeouts()), kT0 + absl::Hours(2));  // not +122 min
}

TEST(SessionTimeoutsTest, OptionFinalTimeoutBeatsTheDefault) {
  v1::Session session = SessionIn(v1::SESSION_STATE_OFFERED, kT0, kT0);
  *session.mutable_options()->mutable_final_timeout() = ToProto(absl::Minutes(1));
  EXPECT_EQ(FinalDeadlineOf(session, Timeouts()), kT0 + absl::Minutes(1));
  EXPECT_EQ(ExpiryOf(session, Timeouts()), kT0 + absl::Minutes(1));
  // Longer than the default works as well: the option is the session's own limit.
  *session.mutable_options()->mutable_final_timeout() = ToProto(absl::Hours(48));
  EXPECT_EQ(FinalDeadlineOf(session, Timeouts()), kT0 + absl::Hours(48));
  session.set_state(v1::SESSION_STATE_ANSWERED);
  *session.mutable_updated_at() = ToProto(kT0 + absl::Hours(20));
  EXPECT_EQ(ExpiryOf(session, Timeouts()), kT0 + absl::Hours(20) + absl::Minutes(30));
}

}  // namespace
}  // namespace latchkey::control
