#include "services/control/sessions/worker_sessions.h"

#include <string>

#include "absl/strings/str_cat.h"
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
using session_test::Address;
using session_test::kT0;
using session_test::LiveSession;
using session_test::Types;

using Sessions = google::protobuf::RepeatedPtrField<v1::Session>;

Sessions Announce(std::initializer_list<v1::Session> sessions) {
  Sessions out;
  for (const v1::Session& session : sessions) *out.Add() = session;
  return out;
}

v1::WorkerEvent Event(const std::string& session_id, v1::SessionEventType type, v1::Side side = v1::SIDE_CALLER,
                      absl::Time time = kT0) {
  v1::WorkerEvent event;
  event.set_session_id(session_id);
  event.set_type(type);
  event.set_side(side);
  *event.mutable_source() = Address("198.51.100.7", 24578);
  *event.mutable_time() = ToProto(time);
  return event;
}

class WorkerSessionsTest : public session_test::SessionCoreFixture {
 protected:
  static constexpr uint64_t kMaxPerPbx = 2;

  WorkerSessionsTest() : sessions_(&store_, &writer_, &relay_, &workers_, &metrics_, kMaxPerPbx) {}

  void RegisterWorker(const std::string& id, absl::Time at) {
    v1::RegisterWorkerRequest request;
    request.set_worker_id(id);
    request.set_grpc_address("127.0.0.1:1");  // never dialled
    request.mutable_load()->set_max_sessions(100);
    request.mutable_load()->set_free_ports(1000);
    request.mutable_load()->set_total_ports(1000);
    EXPECT_TRUE(workers_.Register(request, at).ok());
  }

  WorkerSessions sessions_;
};

TEST_F(WorkerSessionsTest, CheckAnnouncedRefusesAnotherLiveWorkersSession) {
  Put(LiveSession("s1", "w2"));
  auto refused = sessions_.CheckAnnounced("w1", 0, 0, Announce({LiveSession("s0", "w1"), LiveSession("s1", "w1")}));
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(refused.message()), StartsWith("sessions[1]: session s1 is carried by worker w2"));
  // Its own session, or one that ended, may be announced.
  EXPECT_TRUE(sessions_.CheckAnnounced("w2", 0, 0, Announce({LiveSession("s1", "w2")})).ok());
  ASSERT_TRUE(writer_.End(Stored("s1"), v1::SESSION_EVENT_TYPE_WORKER_LOST, false).ok());
  EXPECT_TRUE(sessions_.CheckAnnounced("w1", 0, 0, Announce({LiveSession("s1", "w1")})).ok());
  // Nothing was written by the check.
  EXPECT_EQ(Stored("s1").worker_id(), "w2");
  EXPECT_EQ(store_.Get("s0").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(WorkerSessionsTest, CheckAnnouncedRefusesPortsOutsideTheWorkersRange) {
  // LiveSession's relay ports: caller 20000/20001, callee 20002/20003.
  const Sessions announced = Announce({LiveSession("s1", "w1")});
  EXPECT_TRUE(sessions_.CheckAnnounced("w1", 20000, 20003, announced).ok());
  EXPECT_TRUE(sessions_.CheckAnnounced("w1", 0, 0, announced).ok());  // no range announced: not checked
  auto low = sessions_.CheckAnnounced("w1", 20001, 30000, announced);
  EXPECT_EQ(low.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(low.message()), StartsWith("sessions[0]: relay port 20000 is outside the worker's range"));
  auto high = sessions_.CheckAnnounced("w1", 10000, 20002, announced);  // the callee's RTCP port is 20003
  EXPECT_EQ(high.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(high.message()), StartsWith("sessions[0]: relay port 20002"));
}

TEST_F(WorkerSessionsTest, AdoptFromWorkerAdoptsUnknownSessions) {
  now_ = kT0 + absl::Minutes(5);
  v1::Session answered = LiveSession("s1", "w-old", "pbx/a", kT0);
  *answered.mutable_answered_at() = ToProto(kT0 + absl::Seconds(3));
  answered.set_state(v1::SESSION_STATE_UNSPECIFIED);  // the worker's copy does not decide the state
  v1::Session future = LiveSession("s2", "w-old", "pbx/b", now_ + absl::Hours(1));
  future.set_version(17);
  sessions_.AdoptFromWorker("w1", Announce({answered, future}), now_);

  const v1::Session s1 = Stored("s1");
  EXPECT_EQ(s1.state(), v1::SESSION_STATE_ANSWERED);
  EXPECT_EQ(s1.worker_id(), "w1");
  EXPECT_EQ(s1.owner(), "pbx/a");
  EXPECT_EQ(s1.version(), 1u);
  EXPECT_EQ(FromProto(s1.created_at()), kT0);
  EXPECT_EQ(FromProto(s1.updated_at()), now_);
  EXPECT_EQ(s1.caller().relay(0).rtp().port(), 20000u);
  const v1::Session s2 = Stored("s2");
  EXPECT_EQ(s2.state(), v1::SESSION_STATE_OFFERED);
  // Created at the version its relay holds, so that the relay takes the next update.
  EXPECT_EQ(s2.version(), 17u);
  EXPECT_EQ(FromProto(s2.created_at()), now_);  // never in the future
  EXPECT_EQ(store_.FindLive("pbx/b", "call-s2", "ft-s2")->session_id(), "s2");

  EXPECT_EQ(metrics_.sessions_adopted->Value(), 2.0);
  EXPECT_EQ(metrics_.sessions_active->Value(), 2.0);
  EXPECT_EQ(metrics_.sessions_adopted_over_quota->Value(), 0.0);
  EXPECT_TRUE(relay_.Calls().empty());

  // Announced again (the next registration): already known, nothing changes.
  sessions_.AdoptFromWorker("w1", Announce({answered, future}), now_);
  EXPECT_EQ(Stored("s1").version(), 1u);
  EXPECT_EQ(metrics_.sessions_adopted->Value(), 2.0);
}

TEST_F(WorkerSessionsTest, AdoptionIsNeverRefusedForTheOwnersQuotaButCounted) {
  Put(LiveSession("s1", "w1", "pbx/a"));
  Put(LiveSession("s2", "w1", "pbx/a"));  // at the limit of 2
  sessions_.AdoptFromWorker("w2", Announce({LiveSession("s3", "w2", "pbx/a")}), kT0);
  EXPECT_EQ(Stored("s3").state(), v1::SESSION_STATE_OFFERED);
  EXPECT_EQ(*store_.LiveCount("pbx/a"), 3u);
  EXPECT_EQ(metrics_.sessions_adopted->Value(), 1.0);
  EXPECT_EQ(metrics_.sessions_adopted_over_quota->Value(), 1.0);
  // Uncounted owners are never over a quota.
  sessions_.AdoptFromWorker("w2", Announce({LiveSession("s4", "w2", "operator/x"), LiveSession("s5", "w2", "")}), kT0);
  EXPECT_EQ(metrics_.sessions_adopted->Value(), 3.0);
  EXPECT_EQ(metrics_.sessions_adopted_over_quota->Value(), 1.0);
}

TEST_F(WorkerSessionsTest, AdoptionRevivesAWorkerLostSessionKeepingWhatControlKnew) {
  v1::Session original = LiveSession("s1", "w1", "pbx/a", kT0);
  *original.mutable_options()->mutable_final_timeout() = ToProto(absl::Minutes(90));
  original.mutable_options()->set_latching_mode(v1::LATCHING_MODE_STRICT);
  Put(original);
  ASSERT_TRUE(writer_.End(Stored("s1"), v1::SESSION_EVENT_TYPE_WORKER_LOST, false).ok());
  Events();

  now_ = kT0 + absl::Minutes(2);
  v1::Session announced = LiveSession("s1", "w1", "pbx/intruder", now_ - absl::Hours(5));
  announced.set_call_id("another-call");
  announced.mutable_caller()->set_tag("another-tag");
  announced.mutable_options()->set_latching_mode(v1::LATCHING_MODE_FIRST_PACKET);
  *announced.mutable_answered_at() = ToProto(kT0 + absl::Seconds(4));
  announced.set_end_reason(v1::SESSION_EVENT_TYPE_WORKER_LOST);
  sessions_.AdoptFromWorker("w1", Announce({announced}), now_);

  const v1::Session revived = Stored("s1");
  EXPECT_EQ(revived.state(), v1::SESSION_STATE_ANSWERED);
  EXPECT_EQ(revived.end_reason(), v1::SESSION_EVENT_TYPE_UNSPECIFIED);
  EXPECT_EQ(revived.version(), 3u);
  EXPECT_EQ(revived.owner(), "pbx/a");
  EXPECT_EQ(revived.call_id(), "call-s1");
  EXPECT_EQ(revived.caller().tag(), "ft-s1");
  EXPECT_EQ(revived.options().latching_mode(), v1::LATCHING_MODE_STRICT);
  EXPECT_EQ(FromProto(revived.options().final_timeout()), absl::Minutes(90));
  EXPECT_EQ(FromProto(revived.created_at()), kT0);
  EXPECT_EQ(FromProto(revived.updated_at()), now_);
  EXPECT_EQ(store_.FindLive("pbx/a", "call-s1", "ft-s1")->session_id(), "s1");
  EXPECT_EQ(metrics_.sessions_adopted->Value(), 1.0);
}

TEST_F(WorkerSessionsTest, AdoptionDoesNotReviveASessionThatEndedOtherwise) {
  Put(LiveSession("s1"));
  ASSERT_TRUE(writer_.End(Stored("s1"), v1::SESSION_EVENT_TYPE_RELEASED, false).ok());
  sessions_.AdoptFromWorker("w1", Announce({LiveSession("s1")}), kT0);
  EXPECT_EQ(Stored("s1").state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(Stored("s1").version(), 2u);
  EXPECT_EQ(metrics_.sessions_adopted->Value(), 0.0);
}

TEST_F(WorkerSessionsTest, AdoptionRefusesACallThatIsLiveUnderAnotherSession) {
  v1::Session live = LiveSession("s-live", "w1", "pbx/a");
  live.set_call_id("call-x");
  live.mutable_caller()->set_tag("ft");
  Put(live);
  v1::Session announced = LiveSession("s-announced", "w2", "pbx/a");
  announced.set_call_id("call-x");
  announced.mutable_caller()->set_tag("ft");
  sessions_.AdoptFromWorker("w2", Announce({announced}), kT0);
  EXPECT_EQ(store_.Get("s-announced").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_.FindLive("pbx/a", "call-x", "ft")->session_id(), "s-live");
  EXPECT_EQ(metrics_.sessions_adoption_refused->Value(), 1.0);
  EXPECT_EQ(metrics_.sessions_adopted->Value(), 0.0);
  EXPECT_EQ(metrics_.sessions_active->Value(), 0.0);
}

TEST_F(WorkerSessionsTest, AdoptFromWorkerEndsOrphansPlacedBeforeTheRegistration) {
  const absl::Time registered_at = kT0 + absl::Seconds(10);
  Put(LiveSession("orphan", "w1", "pbx/a", kT0));
  Put(LiveSession("kept", "w1", "pbx/a", kT0));
  Put(LiveSession("at-registration", "w1", "pbx/a", registered_at));
  Put(LiveSession("placed-since", "w1", "pbx/a", registered_at + absl::Seconds(1)));
  Put(LiveSession("elsewhere", "w2", "pbx/a", kT0));
  now_ = kT0 + absl::Seconds(20);
  sessions_.AdoptFromWorker("w1", Announce({LiveSession("kept")}), registered_at);

  EXPECT_EQ(Stored("orphan").state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(Stored("orphan").end_reason(), v1::SESSION_EVENT_TYPE_WORKER_LOST);
  EXPECT_EQ(Stored("kept").state(), v1::SESSION_STATE_OFFERED);
  EXPECT_EQ(Stored("kept").version(), 1u);
  EXPECT_EQ(Stored("at-registration").state(), v1::SESSION_STATE_OFFERED);
  EXPECT_EQ(Stored("placed-since").state(), v1::SESSION_STATE_OFFERED);
  EXPECT_EQ(Stored("elsewhere").state(), v1::SESSION_STATE_OFFERED);
  EXPECT_TRUE(relay_.Calls().empty());  // the worker does not have it: nothing to tell
  auto events = Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type(), v1::SESSION_EVENT_TYPE_WORKER_LOST);
  EXPECT_EQ(events[0].session().session_id(), "orphan");
}

TEST_F(WorkerSessionsTest, LatchAndRelatchUpdateTheLegAndPublish) {
  Put(LiveSession("s1"));
  now_ = kT0 + absl::Seconds(2);
  sessions_.HandleWorkerEvent("w1", Event("s1", v1::SESSION_EVENT_TYPE_LATCHED, v1::SIDE_CALLEE,
                                          kT0 + absl::Seconds(1)));
  v1::Session stored = Stored("s1");
  EXPECT_EQ(stored.version(), 2u);
  EXPECT_EQ(stored.callee().stats().latched_source().ip(), "198.51.100.7");
  EXPECT_EQ(stored.callee().stats().latched_source().port(), 24578u);
  EXPECT_EQ(FromProto(stored.callee().stats().latched_at()), kT0 + absl::Seconds(1));
  EXPECT_EQ(stored.callee().stats().relatch_count(), 0u);
  EXPECT_FALSE(stored.caller().stats().has_latched_source());
  EXPECT_EQ(FromProto(stored.updated_at()), now_);
  auto events = Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type(), v1::SESSION_EVENT_TYPE_LATCHED);
  EXPECT_EQ(events[0].session().version(), 2u);

  v1::WorkerEvent relatched = Event("s1", v1::SESSION_EVENT_TYPE_RELATCHED, v1::SIDE_CALLEE, kT0 + absl::Seconds(9));
  *relatched.mutable_source() = Address("198.51.100.8", 30000);
  sessions_.HandleWorkerEvent("w1", relatched);
  sessions_.HandleWorkerEvent("w1", relatched);
  stored = Stored("s1");
  EXPECT_EQ(stored.version(), 4u);
  EXPECT_EQ(stored.callee().stats().latched_source().ip(), "198.51.100.8");
  EXPECT_EQ(stored.callee().stats().relatch_count(), 2u);
  EXPECT_THAT(Types(Events()), ElementsAre(v1::SESSION_EVENT_TYPE_RELATCHED, v1::SESSION_EVENT_TYPE_RELATCHED));
  EXPECT_TRUE(relay_.Calls().empty());
}

TEST_F(WorkerSessionsTest, LatchContestedIsPublishedWithoutAWrite) {
  Put(LiveSession("s1"));
  sessions_.HandleWorkerEvent("w1", Event("s1", v1::SESSION_EVENT_TYPE_LATCH_CONTESTED, v1::SIDE_CALLER,
                                          kT0 + absl::Seconds(7)));
  EXPECT_EQ(Stored("s1").version(), 1u);
  auto events = Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type(), v1::SESSION_EVENT_TYPE_LATCH_CONTESTED);
  EXPECT_EQ(events[0].side(), v1::SIDE_CALLER);
  EXPECT_EQ(events[0].source().ip(), "198.51.100.7");
  EXPECT_EQ(FromProto(events[0].time()), kT0 + absl::Seconds(7));
}

TEST_F(WorkerSessionsTest, MediaTimeoutEndsTheSessionAndFreesItOnTheWorker) {
  Put(LiveSession("s1"));
  metrics_.sessions_active->Increment();
  sessions_.HandleWorkerEvent("w1", Event("s1", v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT));
  EXPECT_EQ(Stored("s1").state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(Stored("s1").end_reason(), v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT);
  const auto deletes = relay_.Calls(RelayOp::kDelete);
  ASSERT_EQ(deletes.size(), 1u);
  EXPECT_EQ(deletes[0].worker_id, "w1");
  EXPECT_EQ(deletes[0].reason, v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT);
  EXPECT_EQ(deletes[0].ports, kPortsPerStream);
  EXPECT_THAT(Types(Events()), ElementsAre(v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT));
  EXPECT_EQ(metrics_.sessions_active->Value(), 0.0);
  EXPECT_EQ(metrics_.session_ends[v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT]->Value(), 1.0);

  Put(LiveSession("s2"));
  sessions_.HandleWorkerEvent("w1", Event("s2", v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT));
  EXPECT_EQ(Stored("s2").end_reason(), v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT);
}

TEST_F(WorkerSessionsTest, EventsForUnknownOrEndedSessionsOnlyFreeTimedOutOnes) {
  Put(LiveSession("ended"));
  ASSERT_TRUE(writer_.End(Stored("ended"), v1::SESSION_EVENT_TYPE_RELEASED, false).ok());
  Put(LiveSession("on-w2", "w2"));
  Events();

  for (const std::string& id : {std::string("unknown"), std::string("ended"), std::string("on-w2")}) {
    sessions_.HandleWorkerEvent("w1", Event(id, v1::SESSION_EVENT_TYPE_LATCHED));
    sessions_.HandleWorkerEvent("w1", Event(id, v1::SESSION_EVENT_TYPE_RELATCHED));
    sessions_.HandleWorkerEvent("w1", Event(id, v1::SESSION_EVENT_TYPE_LATCH_CONTESTED));
  }
  EXPECT_TRUE(relay_.Calls().empty());
  EXPECT_THAT(Events(), IsEmpty());

  sessions_.HandleWorkerEvent("w1", Event("unknown", v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT));
  sessions_.HandleWorkerEvent("w1", Event("ended", v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT));
  sessions_.HandleWorkerEvent("w1", Event("on-w2", v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT));
  const auto deletes = relay_.Calls(RelayOp::kDelete);
  ASSERT_EQ(deletes.size(), 3u);
  for (const RelayCall& call : deletes) {
    EXPECT_EQ(call.worker_id, "w1");  // the worker that still holds the ports
    EXPECT_EQ(call.ports, 0u);        // never placed there by control: nothing to give back
  }
  EXPECT_EQ(deletes[0].session_id, "unknown");
  EXPECT_EQ(deletes[0].reason, v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT);
  EXPECT_EQ(deletes[1].reason, v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT);
  EXPECT_EQ(Stored("ended").version(), 2u);
  EXPECT_EQ(Stored("on-w2").state(), v1::SESSION_STATE_OFFERED);
  EXPECT_EQ(Stored("on-w2").version(), 1u);
  EXPECT_EQ(store_.Get("unknown").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Events(), IsEmpty());
}

TEST_F(WorkerSessionsTest, WorkerLostEndsItsLiveSessionsWithoutCallingTheRelay) {
  Put(LiveSession("a1", "w1"));
  Put(LiveSession("a2", "w1"));
  Put(LiveSession("done", "w1"));
  ASSERT_TRUE(writer_.End(Stored("done"), v1::SESSION_EVENT_TYPE_RELEASED, false).ok());
  Put(LiveSession("b1", "w2"));
  Events();
  now_ = kT0 + absl::Seconds(40);
  sessions_.WorkerLost("w1");  // never registered here: lost to this replica

  for (const char* id : {"a1", "a2"}) {
    EXPECT_EQ(Stored(id).state(), v1::SESSION_STATE_ENDED) << id;
    EXPECT_EQ(Stored(id).end_reason(), v1::SESSION_EVENT_TYPE_WORKER_LOST) << id;
  }
  EXPECT_EQ(Stored("done").end_reason(), v1::SESSION_EVENT_TYPE_RELEASED);
  EXPECT_EQ(Stored("done").version(), 2u);
  EXPECT_EQ(Stored("b1").state(), v1::SESSION_STATE_OFFERED);
  EXPECT_TRUE(relay_.Calls().empty());
  EXPECT_THAT(Types(Events()), ElementsAre(v1::SESSION_EVENT_TYPE_WORKER_LOST, v1::SESSION_EVENT_TYPE_WORKER_LOST));
  EXPECT_EQ(metrics_.session_ends[v1::SESSION_EVENT_TYPE_WORKER_LOST]->Value(), 2.0);
}

TEST_F(WorkerSessionsTest, WorkerLostLeavesAWorkerThatRegisteredAgain) {
  Put(LiveSession("a1", "w1"));
  RegisterWorker("w1", kT0);
  sessions_.WorkerLost("w1");
  EXPECT_EQ(Stored("a1").state(), v1::SESSION_STATE_OFFERED);
  EXPECT_THAT(Events(), IsEmpty());

  // Declared lost by the registry: its sessions end.
  ASSERT_THAT(workers_.SweepLost(kT0 + absl::Seconds(10)), ElementsAre("w1"));
  sessions_.WorkerLost("w1");
  EXPECT_EQ(Stored("a1").end_reason(), v1::SESSION_EVENT_TYPE_WORKER_LOST);
}

TEST_F(WorkerSessionsTest, WorkerLostEndsMoreThanOnePageOfSessions) {
  constexpr int kSessions = 1005;  // the worker's sessions are read 1000 at a time
  for (int i = 0; i < kSessions; ++i) Put(LiveSession(absl::StrCat("s", 10000 + i), "w1"));
  sessions_.WorkerLost("w1");
  SessionFilter on_w1;
  on_w1.worker_id = "w1";
  auto left = store_.List(on_w1, "", 10);
  ASSERT_TRUE(left.ok());
  EXPECT_THAT(left->sessions, IsEmpty());
  EXPECT_EQ(Events().size(), static_cast<size_t>(kSessions));
}

}  // namespace
}  // namespace latchkey::control

namespace latchkey::control {
namespace {

// A durable store knows every call control placed: a worker announcing one it does not know is
// refused, and only the worker a call was lost on may bring it back.
class DurableWorkerSessionsTest : public WorkerSessionsTest {
 protected:
  DurableWorkerSessionsTest()
      : durable_(&store_, &writer_, &relay_, &workers_, &metrics_, kMaxPerPbx, /*durable_store=*/true) {}
  WorkerSessions durable_;
};

TEST_F(DurableWorkerSessionsTest, UnknownAnnouncedSessionsAreRefused) {
  durable_.AdoptFromWorker("w1", Announce({LiveSession("forged", "w1", "pbx/victim")}), kT0);
  EXPECT_EQ(store_.Get("forged").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_.LiveCount("pbx/victim").value_or(99), 0u);
  EXPECT_EQ(metrics_.sessions_adopted->Value(), 0.0);
  EXPECT_EQ(metrics_.sessions_adoption_refused->Value(), 1.0);
}

TEST_F(DurableWorkerSessionsTest, OnlyTheWorkerACallWasLostOnRevivesIt) {
  Put(LiveSession("s1", "w1"));
  ASSERT_TRUE(writer_.End(Stored("s1"), v1::SESSION_EVENT_TYPE_WORKER_LOST, false).ok());
  durable_.AdoptFromWorker("w2", Announce({LiveSession("s1", "w2")}), kT0);
  EXPECT_EQ(Stored("s1").state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(metrics_.sessions_adoption_refused->Value(), 1.0);

  v1::Session announced = LiveSession("s1", "w1");
  announced.set_version(9);  // the relay heard of a later state than the store kept
  durable_.AdoptFromWorker("w1", Announce({announced}), kT0);
  EXPECT_NE(Stored("s1").state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(Stored("s1").worker_id(), "w1");
  EXPECT_EQ(Stored("s1").version(), 9u);  // at least the relay's, so it takes the next update
}

TEST_F(WorkerSessionsTest, AnnouncedVersionsNearTheCounterLimitAreRefused) {
  v1::Session announced = LiveSession("s1", "w1");
  announced.set_version(UINT64_MAX);
  auto refused = sessions_.CheckAnnounced("w1", 0, 0, Announce({announced}));
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("sessions[0].version"));
}

}  // namespace
}  // namespace latchkey::control
