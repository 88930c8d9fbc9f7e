#include "services/control/sessions/session_manager.h"

#include <atomic>
#include <latch>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/time/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/control/sessions/session_sweeper.h"
#include "tests/unit/services/control/sessions/session_test_util.h"

namespace latchkey::control {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;
using session_test::Address;
using session_test::AllocateRequest;
using session_test::AnswerRequest;
using session_test::kT0;
using session_test::Types;
using session_test::UpdateRequest;
namespace samples = sdp::samples;

const grpcutil::Caller kPbxA = grpcutil::Caller::Of(auth::Role::kPbx, "a");
const grpcutil::Caller kPbxB = grpcutil::Caller::Of(auth::Role::kPbx, "b");
const grpcutil::Caller kOperator = grpcutil::Caller::Of(auth::Role::kOperator, "ops");
const grpcutil::Caller kLocal = grpcutil::Caller::Local();

// One audio stream (or `streams`) at ip:port, from a public endpoint.
std::string Sdp(const std::string& ip, uint32_t port, int streams = 1) {
  std::string text = absl::StrCat("v=0\r\no=- 1 1 IN IP4 ", ip, "\r\ns=-\r\nc=IN IP4 ", ip, "\r\nt=0 0\r\n");
  for (int i = 0; i < streams; ++i) absl::StrAppend(&text, "m=audio ", port + 2 * i, " RTP/AVP 0\r\n");
  return text;
}

// Passes to a MemorySessionStore, refusing writes while `refuse` is set.
class RefusingStore : public SessionStore {
 public:
  explicit RefusingStore(SessionStore* inner) : inner_(inner) {}
  absl::StatusOr<v1::Session> Write(const v1::Session& session, const SessionWrite& write) override {
    if (refuse) return absl::UnavailableError("store: down");
    return inner_->Write(session, write);
  }
  absl::Status Remove(const std::string& id, uint64_t version) override { return inner_->Remove(id, version); }
  absl::StatusOr<v1::Session> Get(const std::string& id) override { return inner_->Get(id); }
  absl::StatusOr<v1::Session> FindLive(const std::string& owner, const std::string& call_id,
                                       const std::string& from_tag, const std::string& branch = "") override {
    return inner_->FindLive(owner, call_id, from_tag, branch);
  }
  absl::StatusOr<std::vector<v1::Session>> ListLiveCall(const std::string& owner, const std::string& call_id,
                                                        size_t limit) override {
    return inner_->ListLiveCall(owner, call_id, limit);
  }
  absl::StatusOr<SessionPage> List(const SessionFilter& filter, const std::string& cursor, size_t limit) override {
    return inner_->List(filter, cursor, limit);
  }
  absl::StatusOr<std::vector<v1::Session>> ListExpired(absl::Time now, size_t limit) override {
    return inner_->ListExpired(now, limit);
  }
  absl::StatusOr<uint64_t> LiveCount(const std::string& owner) override { return inner_->LiveCount(owner); }
  absl::Status AppendEvent(const v1::WatchSessionsResponse& event) override { return inner_->AppendEvent(event); }
  absl::StatusOr<std::string> LogTail() override { return inner_->LogTail(); }
  absl::StatusOr<LogPage<v1::WatchSessionsResponse>> ReadLog(const std::string& after, size_t limit) override {
    return inner_->ReadLog(after, limit);
  }

  std::atomic<bool> refuse{false};

 private:
  SessionStore* inner_;
};

class SessionManagerTest : public session_test::SessionCoreFixture {
 protected:
  SessionManagerTest() { Reset(SessionManagerOptions{}); }

  void Reset(SessionManagerOptions options) {
    options_ = options;
    manager_ = NewManager(&writer_);
  }
  std::unique_ptr<SessionManager> NewManager(SessionWriter* writer, SessionStore* store = nullptr) {
    return std::make_unique<SessionManager>(options_, store ? store : &store_, writer, &relay_, &metrics_, &detector_,
                                            [](const std::string& ip, uint32_t) { return ip == "192.0.2.99"; });
  }

  v1::AllocateSessionResponse MustAllocate(const v1::AllocateSessionRequest& request,
                                           const grpcutil::Caller& caller = kPbxA) {
    auto response = manager_->Allocate(request, caller);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::AllocateSessionResponse();
  }
  v1::AnswerSessionResponse MustAnswer(const v1::AnswerSessionRequest& request,
                                       const grpcutil::Caller& caller = kPbxA) {
    auto response = manager_->Answer(request, caller);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::AnswerSessionResponse();
  }
  size_t StoredCount() {
    auto page = store_.List(SessionFilter{}, "", 1000);
    EXPECT_TRUE(page.ok());
    return page.ok() ? page->sessions.size() : 0;
  }

  SessionManagerOptions options_;
  std::unique_ptr<SessionManager> manager_;
};

TEST_F(SessionManagerTest, AllocatePlacesStoresVersionOneRewritesAndPublishes) {
  auto response = MustAllocate(AllocateRequest("call-1", "ft-1"));
  const v1::Session& session = response.session();
  EXPECT_FALSE(session.session_id().empty());
  EXPECT_EQ(session.version(), 1u);
  EXPECT_EQ(session.state(), v1::SESSION_STATE_OFFERED);
  EXPECT_EQ(session.owner(), "pbx/a");
  EXPECT_EQ(session.call_id(), "call-1");
  EXPECT_EQ(session.caller().tag(), "ft-1");
  EXPECT_EQ(session.worker_id(), "w1");
  EXPECT_EQ(session.caller().verdict().state(), v1::NAT_STATE_BEHIND_NAT);
  EXPECT_EQ(session.caller().latching_mode(), v1::LATCHING_MODE_SIGNALING_SOURCE);
  EXPECT_EQ(FromProto(session.created_at()), kT0);
  EXPECT_EQ(FromProto(session.updated_at()), kT0);
  // Defaults filled into the options.
  EXPECT_EQ(FromProto(session.options().media_timeout()), absl::Seconds(60));
  EXPECT_EQ(FromProto(session.options().final_timeout()), absl::Hours(12));
  EXPECT_EQ(session.options().ice(), v1::ICE_HANDLING_REMOVE);
  ASSERT_EQ(session.callee().relay_size(), 1);
  EXPECT_EQ(session.callee().relay(0).rtp().port(), 20002u);

  const auto creates = relay_.Calls(RelayOp::kCreate);
  ASSERT_EQ(creates.size(), 1u);
  EXPECT_EQ(creates[0].streams, 1u);
  EXPECT_EQ(creates[0].callee_family, 4u);
  EXPECT_EQ(creates[0].session_id, session.session_id());

  // The callee is offered the relay's callee-leg port instead of the phone's private address.
  EXPECT_THAT(response.sdp(), HasSubstr("c=IN IP4 192.0.2.10\r\n"));
  EXPECT_THAT(response.sdp(), HasSubstr("m=audio 20002 RTP/AVP 9 0 8 18 101\r\n"));
  EXPECT_THAT(response.sdp(), Not(HasSubstr("c=IN IP4 192.168.1.101")));

  const v1::Session stored = Stored(session.session_id());
  EXPECT_EQ(stored.SerializeAsString(), session.SerializeAsString());

  auto events = Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].type(), v1::SESSION_EVENT_TYPE_ALLOCATED);
  EXPECT_EQ(events[0].session().version(), 1u);
  EXPECT_EQ(events[0].session().session_id(), session.session_id());
  EXPECT_EQ(metrics_.sessions_active->Value(), 1.0);
  EXPECT_EQ(metrics_.session_allocations->Value(), 1.0);
}

TEST_F(SessionManagerTest, AllocateChecksTheRequestBeforeAnyRelayCall) {
  auto no_call_id = manager_->Allocate(AllocateRequest(""), kPbxA);
  EXPECT_EQ(no_call_id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_call_id.status().message()), StartsWith("call_id:"));
  auto bad_sdp = manager_->Allocate(AllocateRequest("call-1", "ft", "v=0\r\nc=IN IP4 nope\r\n"), kPbxA);
  EXPECT_EQ(bad_sdp.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad_sdp.status().message()), StartsWith("sdp:"));
  v1::AllocateSessionRequest bad_source = AllocateRequest();
  bad_source.mutable_signaling_source()->set_port(70000);  // 0 is "unknown", allowed
  auto refused = manager_->Allocate(bad_source, kPbxA);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(refused.status().message()), StartsWith("signaling_source.port:"));
  EXPECT_TRUE(relay_.Calls().empty());
  EXPECT_EQ(StoredCount(), 0u);
}

TEST_F(SessionManagerTest, AllocateMarksAChainedRelayAndAsksForTheCalleeFamily) {
  v1::AllocateSessionRequest request = AllocateRequest("call-1", "ft", Sdp("192.0.2.99", 30000));
  request.mutable_options()->set_callee_ip_family(v1::IP_FAMILY_IPV6);
  auto response = MustAllocate(request);
  EXPECT_TRUE(response.session().caller().relay_chain());
  ASSERT_EQ(relay_.Calls(RelayOp::kCreate).size(), 1u);
  EXPECT_EQ(relay_.Calls(RelayOp::kCreate)[0].callee_family, 6u);
  EXPECT_THAT(response.sdp(), HasSubstr("c=IN IP6 2001:db8::10"));
}

TEST_F(SessionManagerTest, TheSameCallIdAndFromTagAgainIsAReoffer) {
  const auto first = MustAllocate(AllocateRequest("call-1", "ft-1"));
  Events();
  now_ = kT0 + absl::Seconds(10);
  const auto again = MustAllocate(AllocateRequest("call-1", "ft-1", samples::kYealinkHoldReinvite));
  EXPECT_EQ(again.session().session_id(), first.session().session_id());
  EXPECT_EQ(again.session().version(), 2u);
  EXPECT_EQ(again.session().worker_id(), "w1");
  EXPECT_EQ(again.session().caller().remote(0).direction(), v1::MEDIA_DIRECTION_SENDONLY);
  EXPECT_EQ(FromProto(again.session().updated_at()), now_);
  EXPECT_EQ(FromProto(again.session().created_at()), kT0);
  // Same relay ports in the SDP for the callee.
  EXPECT_THAT(again.sdp(), HasSubstr("m=audio 20002 RTP/AVP 9 101\r\n"));
  EXPECT_EQ(relay_.Count(RelayOp::kCreate), 1u);
  EXPECT_EQ(relay_.Count(RelayOp::kUpdate), 1u);
  EXPECT_THAT(Types(Events()), ElementsAre(v1::SESSION_EVENT_TYPE_UPDATED));
  EXPECT_EQ(Stored(first.session().session_id()).version(), 2u);
  EXPECT_EQ(metrics_.sessions_active->Value(), 1.0);
  EXPECT_EQ(metrics_.session_allocations->Value(), 1.0);

  // Another from-tag (a new dialog) or another PBX's same Call-ID are other calls.
  const auto other_tag = MustAllocate(AllocateRequest("call-1", "ft-2"));
  EXPECT_NE(other_tag.session().session_id(), first.session().session_id());
  const auto other_pbx = MustAllocate(AllocateRequest("call-1", "ft-1"), kPbxB);
  EXPECT_NE(other_pbx.session().session_id(), first.session().session_id());
  EXPECT_EQ(other_pbx.session().version(), 1u);
  EXPECT_EQ(StoredCount(), 3u);
}

TEST_F(SessionManagerTest, ReofferAfterReleaseIsANewSession) {
  const auto first = MustAllocate(AllocateRequest("call-1", "ft-1"));
  ASSERT_TRUE(manager_->Release(first.session().session_id(), kPbxA).ok());
  const auto again = MustAllocate(AllocateRequest("call-1", "ft-1"));
  EXPECT_NE(again.session().session_id(), first.session().session_id());
  EXPECT_EQ(again.session().version(), 1u);
}

TEST_F(SessionManagerTest, RelayCreateFailureLeavesNothingStored) {
  relay_.FailCreate(absl::ResourceExhaustedError("relay worker w1: full"));
  auto response = manager_->Allocate(AllocateRequest(), kPbxA);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(response.status().message(), "relay worker w1: full");
  EXPECT_EQ(StoredCount(), 0u);
  EXPECT_EQ(store_.FindLive("pbx/a", "call-1", "ft-1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Events(), IsEmpty());
  EXPECT_EQ(metrics_.sessions_active->Value(), 0.0);
  EXPECT_EQ(metrics_.session_allocations->Value(), 0.0);
  EXPECT_EQ(relay_.Count(RelayOp::kDelete), 0u);  // nothing was placed

  relay_.FailCreate(absl::OkStatus());
  EXPECT_TRUE(manager_->Allocate(AllocateRequest(), kPbxA).ok());
}

TEST_F(SessionManagerTest, StoreRefusalAfterCreateFreesTheRelaySession) {
  RefusingStore refusing(&store_);
  SessionWriter writer(&refusing, &relay_, &metrics_, SessionTimeouts{}, [this] { return now_; });
  auto manager = NewManager(&writer, &refusing);
  refusing.refuse = true;
  auto response = manager->Allocate(AllocateRequest(), kPbxA);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(response.status().message(), "store: down");

  const auto creates = relay_.Calls(RelayOp::kCreate);
  const auto deletes = relay_.Calls(RelayOp::kDelete);
  ASSERT_EQ(creates.size(), 1u);
  ASSERT_EQ(deletes.size(), 1u);
  EXPECT_EQ(deletes[0].session_id, creates[0].session_id);
  EXPECT_EQ(deletes[0].worker_id, "w1");
  EXPECT_EQ(deletes[0].ports, kPortsPerStream);
  EXPECT_THAT(relay_.Live(), IsEmpty());
  EXPECT_EQ(StoredCount(), 0u);
  EXPECT_THAT(Events(), IsEmpty());
  EXPECT_EQ(metrics_.sessions_active->Value(), 0.0);
}

// The limit is read before the relay call and enforced again, atomically, by the store: a session
// that another allocation beat to the last place is freed on its worker.
TEST_F(SessionManagerTest, OwnerLimitReachedWhileTheRelayPlacedTheSessionFreesIt) {
  SessionManagerOptions options;
  options.max_sessions_per_pbx = 1;
  Reset(options);
  relay_.BlockCall(RelayOp::kCreate, 0);
  absl::StatusOr<v1::AllocateSessionResponse> late;
  std::thread slow([&] { late = manager_->Allocate(AllocateRequest("call-1", "ft"), kPbxA); });
  ASSERT_TRUE(relay_.WaitBlocked(RelayOp::kCreate, 0));
  const auto quick = MustAllocate(AllocateRequest("call-2", "ft"));
  relay_.Release(RelayOp::kCreate, 0);
  slow.join();

  EXPECT_EQ(late.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(late.status().message()), StartsWith("max_sessions_per_pbx:"));
  const auto deletes = relay_.Calls(RelayOp::kDelete);
  ASSERT_EQ(deletes.size(), 1u);
  EXPECT_EQ(deletes[0].session_id, relay_.Calls(RelayOp::kCreate)[0].session_id);
  EXPECT_THAT(relay_.Live(), ElementsAre(quick.session().session_id()));
  EXPECT_EQ(StoredCount(), 1u);
  EXPECT_EQ(metrics_.sessions_active->Value(), 1.0);
}

TEST_F(SessionManagerTest, OwnerLimitRefusesBeforeAnyRelayCall) {
  SessionManagerOptions options;
  options.max_sessions_per_pbx = 2;
  Reset(options);
  const auto first = MustAllocate(AllocateRequest("call-1", "ft"));
  MustAllocate(AllocateRequest("call-2", "ft"));
  Events();
  auto refused = manager_->Allocate(AllocateRequest("call-3", "ft"), kPbxA);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()), StartsWith("max_sessions_per_pbx: pbx/a holds 2"));
  EXPECT_EQ(relay_.Count(RelayOp::kCreate), 2u);
  EXPECT_THAT(Events(), IsEmpty());

  // A re-offer of a call it holds is no new place.
  EXPECT_TRUE(manager_->Allocate(AllocateRequest("call-1", "ft"), kPbxA).ok());
  // Other PBXes and uncounted callers are not affected.
  EXPECT_TRUE(manager_->Allocate(AllocateRequest("call-3", "ft"), kPbxB).ok());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(manager_->Allocate(AllocateRequest(absl::StrCat("local-", i)), kLocal).ok());
  // A released session frees its place.
  ASSERT_TRUE(manager_->Release(first.session().session_id(), kPbxA).ok());
  EXPECT_TRUE(manager_->Allocate(AllocateRequest("call-3", "ft"), kPbxA).ok());
}

TEST_F(SessionManagerTest, AnswerPublishesAnsweredAndRewritesForTheCaller) {
  const auto offer = MustAllocate(AllocateRequest());
  const std::string id = offer.session().session_id();
  Events();
  now_ = kT0 + absl::Seconds(2);
  const auto answer = MustAnswer(AnswerRequest(id, "tt-1"));
  const v1::Session& session = answer.session();
  EXPECT_EQ(session.state(), v1::SESSION_STATE_ANSWERED);
  EXPECT_EQ(session.version(), 2u);
  EXPECT_EQ(session.callee().tag(), "tt-1");
  EXPECT_EQ(FromProto(session.answered_at()), now_);
  EXPECT_EQ(FromProto(session.updated_at()), now_);
  ASSERT_EQ(session.callee().remote_size(), 1);
  EXPECT_EQ(session.callee().remote(0).sdp_rtp().ip(), "198.51.100.7");
  EXPECT_EQ(session.callee().latching_mode(), v1::LATCHING_MODE_HEURISTIC);
  // The caller is sent the relay's caller-leg port.
  EXPECT_THAT(answer.sdp(), HasSubstr("c=IN IP4 192.0.2.10\r\n"));
  EXPECT_THAT(answer.sdp(), HasSubstr("m=audio 20000 RTP/AVP 0 101\r\n"));
  EXPECT_THAT(answer.sdp(), HasSubstr("a=rtcp:20001"));
  // The worker was told, with the state it should keep.
  const auto updates = relay_.Calls(RelayOp::kUpdate);
  ASSERT_EQ(updates.size(), 1u);
  EXPECT_EQ(updates[0].session.state(), v1::SESSION_STATE_ANSWERED);
  EXPECT_EQ(updates[0].session.callee().remote(0).sdp_rtp().port(), 24578u);
  EXPECT_EQ(Stored(id).SerializeAsString(), session.SerializeAsString());
  EXPECT_THAT(Types(Events()), ElementsAre(v1::SESSION_EVENT_TYPE_ANSWERED));

  // The same to-tag again (a re-sent 200, an UPDATE) is an update, answered_at kept.
  now_ = kT0 + absl::Seconds(5);
  const auto again = MustAnswer(AnswerRequest(id, "tt-1"));
  EXPECT_EQ(again.session().version(), 3u);
  EXPECT_EQ(FromProto(again.session().answered_at()), kT0 + absl::Seconds(2));
  EXPECT_THAT(Types(Events()), ElementsAre(v1::SESSION_EVENT_TYPE_UPDATED));
}

TEST_F(SessionManagerTest, AForkedAnswerWithAnotherToTagIsRefused) {
  const std::string id = MustAllocate(AllocateRequest()).session().session_id();
  MustAnswer(AnswerRequest(id, "tt-1"));
  Events();
  auto forked = manager_->Answer(AnswerRequest(id, "tt-2"), kPbxA);
  EXPECT_EQ(forked.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(forked.status().message()), StartsWith("to_tag:"));
  EXPECT_THAT(std::string(forked.status().message()), HasSubstr("tt-1"));
  EXPECT_EQ(Stored(id).version(), 2u);
  EXPECT_EQ(Stored(id).callee().tag(), "tt-1");
  EXPECT_EQ(relay_.Count(RelayOp::kUpdate), 1u);
  EXPECT_THAT(Events(), IsEmpty());
}

TEST_F(SessionManagerTest, AnAnswerWithAnotherNumberOfStreamsIsInvalid) {
  const std::string id = MustAllocate(AllocateRequest()).session().session_id();
  auto answer = manager_->Answer(AnswerRequest(id, "tt-1", samples::kRejectedVideoAnswer), kPbxA);
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(answer.status().message()), StartsWith("sdp: the answer has 2 m= lines, the offer had 1"));
  EXPECT_EQ(Stored(id).version(), 1u);
  EXPECT_EQ(Stored(id).state(), v1::SESSION_STATE_OFFERED);
  EXPECT_EQ(relay_.Count(RelayOp::kUpdate), 0u);
}

TEST_F(SessionManagerTest, AnswerAndUpdateCheckTheirFields) {
  const std::string id = MustAllocate(AllocateRequest()).session().session_id();
  auto no_tag = manager_->Answer(AnswerRequest(id, ""), kPbxA);
  EXPECT_EQ(no_tag.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_tag.status().message()), StartsWith("to_tag:"));
  auto no_id = manager_->Answer(AnswerRequest("", "tt"), kPbxA);
  EXPECT_EQ(no_id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_id.status().message()), StartsWith("session_id:"));
  auto no_side = manager_->Update(UpdateRequest(id, v1::SIDE_UNSPECIFIED, samples::kYealinkOffer), kPbxA);
  EXPECT_EQ(no_side.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_side.status().message()), StartsWith("side:"));
  auto no_sdp = manager_->Update(UpdateRequest(id, v1::SIDE_CALLER, ""), kPbxA);
  EXPECT_EQ(no_sdp.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_sdp.status().message()), StartsWith("sdp:"));
  EXPECT_EQ(Stored(id).version(), 1u);
  EXPECT_TRUE(relay_.Calls(RelayOp::kUpdate).empty());
}

TEST_F(SessionManagerTest, UpdateOfTheCalleeBeforeTheAnswerIsRefused) {
  const std::string id = MustAllocate(AllocateRequest()).session().session_id();
  auto update = manager_->Update(UpdateRequest(id, v1::SIDE_CALLEE, samples::kFreeswitchAnswer), kPbxA);
  EXPECT_EQ(update.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(update.status().message()), StartsWith("side:"));
  EXPECT_EQ(Stored(id).version(), 1u);
  EXPECT_EQ(relay_.Count(RelayOp::kUpdate), 0u);
  // The caller may change its offer before the answer.
  EXPECT_TRUE(manager_->Update(UpdateRequest(id, v1::SIDE_CALLER, samples::kYealinkHoldReinvite), kPbxA).ok());
}

TEST_F(SessionManagerTest, UpdateAfterTheAnswerChangesThatLegAndPublishesUpdated) {
  const std::string id = MustAllocate(AllocateRequest()).session().session_id();
  MustAnswer(AnswerRequest(id));
  Events();
  now_ = kT0 + absl::Minutes(1);
  auto update = manager_->Update(UpdateRequest(id, v1::SIDE_CALLEE, Sdp("198.51.100.8", 26000)), kPbxA);
  ASSERT_TRUE(update.ok()) << update.status();
  EXPECT_EQ(update->session().version(), 3u);
  EXPECT_EQ(update->session().callee().remote(0).sdp_rtp().ip(), "198.51.100.8");
  EXPECT_EQ(update->session().caller().remote(0).sdp_rtp().ip(), "192.168.1.101");  // the other leg kept
  EXPECT_EQ(FromProto(update->session().updated_at()), now_);
  EXPECT_THAT(update->sdp(), HasSubstr("m=audio 20000 RTP/AVP 0\r\n"));
  EXPECT_THAT(Types(Events()), ElementsAre(v1::SESSION_EVENT_TYPE_UPDATED));
  EXPECT_EQ(relay_.Calls(RelayOp::kUpdate).back().session.callee().remote(0).sdp_rtp().port(), 26000u);

  // A worker that cannot take the change: nothing is written.
  relay_.FailUpdate(absl::UnavailableError("relay worker w1: unreachable"));
  auto failed = manager_->Update(UpdateRequest(id, v1::SIDE_CALLER, samples::kYealinkHoldReinvite), kPbxA);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Stored(id).version(), 3u);
  EXPECT_THAT(Events(), IsEmpty());
}

TEST_F(SessionManagerTest, ReleaseEndsOnceAndASecondReleaseReturnsTheEndedSession) {
  const std::string id = MustAllocate(AllocateRequest()).session().session_id();
  Events();
  now_ = kT0 + absl::Seconds(30);
  auto released = manager_->Release(id, kPbxA);
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(released->state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(released->end_reason(), v1::SESSION_EVENT_TYPE_RELEASED);
  EXPECT_EQ(released->version(), 2u);
  const auto deletes = relay_.Calls(RelayOp::kDelete);
  ASSERT_EQ(deletes.size(), 1u);
  EXPECT_EQ(deletes[0].session_id, id);
  EXPECT_EQ(deletes[0].reason, v1::SESSION_EVENT_TYPE_RELEASED);
  EXPECT_EQ(deletes[0].ports, kPortsPerStream);
  EXPECT_THAT(Types(Events()), ElementsAre(v1::SESSION_EVENT_TYPE_RELEASED));
  EXPECT_EQ(metrics_.sessions_active->Value(), 0.0);

  auto again = manager_->Release(id, kPbxA);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->SerializeAsString(), released->SerializeAsString());
  EXPECT_EQ(relay_.Count(RelayOp::kDelete), 1u);
  EXPECT_THAT(Events(), IsEmpty());
  EXPECT_EQ(metrics_.sessions_active->Value(), 0.0);
  EXPECT_EQ(metrics_.session_ends[v1::SESSION_EVENT_TYPE_RELEASED]->Value(), 1.0);

  // An ended session takes no more signalling.
  auto answer = manager_->Answer(AnswerRequest(id), kPbxA);
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(answer.status().message()), StartsWith("session_id:"));
  auto update = manager_->Update(UpdateRequest(id, v1::SIDE_CALLER, samples::kYealinkOffer), kPbxA);
  EXPECT_EQ(update.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(update.status().message()), HasSubstr("has ended"));
  EXPECT_EQ(relay_.Count(RelayOp::kUpdate), 0u);
}

TEST_F(SessionManagerTest, AnotherPbxsSessionIsNotFoundLikeAnUnknownId) {
  const v1::Session mine = MustAllocate(AllocateRequest()).session();
  const std::string id = mine.session_id();
  Events();
  const size_t calls_before = relay_.Calls().size();

  auto get = manager_->Get(id, kPbxB);
  auto answer = manager_->Answer(AnswerRequest(id), kPbxB);
  auto update = manager_->Update(UpdateRequest(id, v1::SIDE_CALLER, samples::kYealinkOffer), kPbxB);
  auto release = manager_->Release(id, kPbxB);
  for (const absl::Status& status : {get.status(), answer.status(), update.status(), release.status()}) {
    EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  }
  EXPECT_EQ(relay_.Calls().size(), calls_before);
  EXPECT_EQ(Stored(id).SerializeAsString(), mine.SerializeAsString());
  EXPECT_THAT(Events(), IsEmpty());
  // Operators and plaintext callers see it.
  EXPECT_TRUE(manager_->Get(id, kOperator).ok());
  EXPECT_TRUE(manager_->Get(id, kLocal).ok());

  // The same id once it really is unknown: the answers must not tell the two apart.
  ASSERT_TRUE(manager_->Release(id, kPbxA).ok());
  ASSERT_TRUE(store_.Remove(id, Stored(id).version()).ok());
  auto unknown_get = manager_->Get(id, kPbxA);
  auto unknown_answer = manager_->Answer(AnswerRequest(id), kPbxA);
  auto unknown_update = manager_->Update(UpdateRequest(id, v1::SIDE_CALLER, samples::kYealinkOffer), kPbxA);
  auto unknown_release = manager_->Release(id, kPbxA);
  EXPECT_EQ(unknown_get.status(), get.status());
  EXPECT_EQ(unknown_answer.status(), answer.status());
  EXPECT_EQ(unknown_update.status(), update.status());
  EXPECT_EQ(unknown_release.status(), release.status());
  EXPECT_THAT(std::string(get.status().message()), StartsWith("session_id:"));
}

TEST_F(SessionManagerTest, GetAddsTheWorkersLiveFigures) {
  const std::string id = MustAllocate(AllocateRequest()).session().session_id();
  v1::GetRelaySessionResponse figures;
  figures.mutable_caller()->set_packets_in(42);
  figures.mutable_callee()->set_packets_out(41);
  relay_.SetStats(true, figures);
  auto live = manager_->Get(id, kPbxA);
  ASSERT_TRUE(live.ok()) << live.status();
  EXPECT_EQ(live->caller().stats().packets_in(), 42u);
  EXPECT_EQ(live->callee().stats().packets_out(), 41u);
  EXPECT_EQ(Stored(id).caller().stats().packets_in(), 0u);  // figures are not written

  relay_.SetStats(false, figures);
  auto silent = manager_->Get(id, kPbxA);
  ASSERT_TRUE(silent.ok()) << silent.status();
  EXPECT_EQ(silent->caller().stats().packets_in(), 0u);

  ASSERT_TRUE(manager_->Release(id, kPbxA).ok());
  const size_t stats_calls = relay_.Count(RelayOp::kStats);
  EXPECT_TRUE(manager_->Get(id, kPbxA).ok());
  EXPECT_EQ(relay_.Count(RelayOp::kStats), stats_calls);  // an ended session is not asked about

  auto bad = manager_->Get("", kPbxA);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), StartsWith("session_id:"));
}

TEST_F(SessionManagerTest, ListFiltersByOwnerAndWorkerAndPages) {
  relay_.AddWorker("w2", "192.0.2.20", "2001:db8::20", 40000);
  std::set<std::string> all;
  std::string a_on_w1;
  for (int i = 0; i < 2; ++i) {
    a_on_w1 = MustAllocate(AllocateRequest(absl::StrCat("a", i)), kPbxA).session().session_id();
    all.insert(a_on_w1);
    all.insert(MustAllocate(AllocateRequest(absl::StrCat("b", i)), kPbxB).session().session_id());
  }
  relay_.PlaceOn("w2");
  const std::string a_on_w2 = MustAllocate(AllocateRequest("a2"), kPbxA).session().session_id();
  all.insert(a_on_w2);

  auto ids = [&](const v1::ListSessionsRequest& request, const grpcutil::Caller& caller) {
    std::vector<std::string> out;
    auto response = manager_->List(request, caller);
    EXPECT_TRUE(response.ok()) << response.status();
    if (response.ok()) {
      for (const v1::Session& session : response->sessions()) out.push_back(session.session_id());
    }
    return out;
  };
  v1::ListSessionsRequest request;
  EXPECT_EQ(ids(request, kPbxA).size(), 3u);
  EXPECT_EQ(ids(request, kPbxB).size(), 2u);
  EXPECT_EQ(ids(request, kLocal).size(), 5u);
  EXPECT_EQ(ids(request, kOperator).size(), 5u);
  auto owned = manager_->List(request, kPbxA);
  ASSERT_TRUE(owned.ok()) << owned.status();
  for (const v1::Session& session : owned->sessions()) EXPECT_EQ(session.owner(), "pbx/a");
  request.set_worker_id("w2");
  EXPECT_THAT(ids(request, kPbxA), ElementsAre(a_on_w2));
  EXPECT_THAT(ids(request, kPbxB), IsEmpty());
  request.set_worker_id("w1");
  EXPECT_EQ(ids(request, kPbxA).size(), 2u);
  EXPECT_EQ(ids(request, kLocal).size(), 4u);

  // An ended session stays in its owner's list but leaves its worker's.
  ASSERT_TRUE(manager_->Release(a_on_w1, kPbxA).ok());
  EXPECT_EQ(ids(request, kPbxA).size(), 1u);
  request.clear_worker_id();
  EXPECT_EQ(ids(request, kPbxA).size(), 3u);

  // Pages of two cover every session once.
  request.set_page_size(2);
  std::set<std::string> paged;
  int pages = 0;
  std::string token;
  do {
    request.set_page_token(token);
    auto page = manager_->List(request, kLocal);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->sessions_size(), 2);
    for (const v1::Session& session : page->sessions()) EXPECT_TRUE(paged.insert(session.session_id()).second);
    token = page->next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(paged, all);
}

TEST_F(SessionManagerTest, ListChecksItsFields) {
  v1::ListSessionsRequest request;
  request.set_page_size(1001);
  auto too_big = manager_->List(request, kLocal);
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_big.status().message()), StartsWith("page_size:"));
  request.set_page_size(1000);
  EXPECT_TRUE(manager_->List(request, kLocal).ok());
  request.set_page_token("not base64!");
  auto bad_token = manager_->List(request, kLocal);
  EXPECT_EQ(bad_token.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad_token.status().message()), StartsWith("page_token:"));
  request.clear_page_token();
  request.set_worker_id("w 1");
  auto bad_worker = manager_->List(request, kLocal);
  EXPECT_EQ(bad_worker.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad_worker.status().message()), StartsWith("worker_id:"));
}

// Two control replicas: each its own SessionManager and SessionWriter, one store, one relay fleet.
class SessionManagerReplicasTest : public SessionManagerTest {
 protected:
  SessionManagerReplicasTest()
      : other_writer_(&store_, &relay_, &metrics_, SessionTimeouts{}, [this] { return now_; }),
        other_(NewManager(&other_writer_)) {}

  SessionWriter other_writer_;
  std::unique_ptr<SessionManager> other_;
};

TEST_F(SessionManagerReplicasTest, ConcurrentAnswersAndUpdatesNeverLoseAWrite) {
  const std::string id = MustAllocate(AllocateRequest()).session().session_id();
  MustAnswer(AnswerRequest(id, "tt-1"));
  constexpr int kRounds = 300;
  std::latch start(2);
  std::atomic<int> written{0};
  std::atomic<int> aborted{0};
  std::atomic<int> other_errors{0};
  auto count = [&](const absl::Status& status) {
    if (status.ok()) {
      ++written;
    } else if (absl::IsAborted(status)) {
      ++aborted;
    } else {
      ++other_errors;
    }
  };
  std::thread callers([&] {
    start.arrive_and_wait();
    for (int i = 0; i < kRounds; ++i) {
      count(manager_->Update(UpdateRequest(id, v1::SIDE_CALLER, Sdp("203.0.113.5", 10000 + 2 * i)), kPbxA).status());
    }
  });
  std::thread callees([&] {
    start.arrive_and_wait();
    for (int i = 0; i < kRounds; ++i) {
      count(other_->Answer(AnswerRequest(id, "tt-1", Sdp("198.51.100.7", 40000 + 2 * i)), kPbxA).status());
    }
  });
  callers.join();
  callees.join();
  // Attempts that lost a race and were applied again (the worker is told on each attempt).
  RecordProperty("retried", static_cast<int>(relay_.Count(RelayOp::kUpdate)) - 1 - 2 * kRounds + aborted.load());
  RecordProperty("aborted", aborted.load());
  EXPECT_EQ(other_errors.load(), 0);
  EXPECT_GT(written.load(), 0);
  const v1::Session stored = Stored(id);
  // Allocate + first answer + every write that was reported done.
  EXPECT_EQ(stored.version(), 2u + static_cast<uint64_t>(written.load()));
  EXPECT_EQ(Types(Events()).size(), 2u + static_cast<size_t>(written.load()));
  if (aborted.load() == 0) {
    // The worker's last word is what the store holds (an attempt that gave up may have told it more).
    const RelayCall last = relay_.Calls(RelayOp::kUpdate).back();
    EXPECT_EQ(last.session.caller().remote(0).sdp_rtp().port(), stored.caller().remote(0).sdp_rtp().port());
    EXPECT_EQ(last.session.callee().remote(0).sdp_rtp().port(), stored.callee().remote(0).sdp_rtp().port());
  }
}

// Deterministic interleaving: replica B writes while replica A waits for the worker; A applies its
// change again to B's record and tells the worker again, so the worker's last update is the stored
// record with both changes.
TEST_F(SessionManagerReplicasTest, AnUpdateThatLostTheRaceIsAppliedAgainAndRetold) {
  const std::string id = MustAllocate(AllocateRequest()).session().session_id();
  MustAnswer(AnswerRequest(id, "tt-1"));  // Update #0
  relay_.BlockCall(RelayOp::kUpdate, 1);
  absl::StatusOr<v1::UpdateSessionResponse> a;
  std::thread replica_a(
      [&] { a = manager_->Update(UpdateRequest(id, v1::SIDE_CALLER, Sdp("203.0.113.5", 12000)), kPbxA); });
  ASSERT_TRUE(relay_.WaitBlocked(RelayOp::kUpdate, 1));
  auto b = other_->Update(UpdateRequest(id, v1::SIDE_CALLEE, Sdp("198.51.100.7", 42000)), kPbxA);  // Update #2
  ASSERT_TRUE(b.ok()) << b.status();
  relay_.Release(RelayOp::kUpdate, 1);
  replica_a.join();
  ASSERT_TRUE(a.ok()) << a.status();

  const v1::Session stored = Stored(id);
  EXPECT_EQ(stored.version(), 4u);
  EXPECT_EQ(stored.caller().remote(0).sdp_rtp().port(), 12000u);
  EXPECT_EQ(stored.callee().remote(0).sdp_rtp().port(), 42000u);
  const auto updates = relay_.Calls(RelayOp::kUpdate);
  ASSERT_EQ(updates.size(), 4u);  // answer, A (lost), B, A again
  EXPECT_EQ(updates.back().session.caller().remote(0).sdp_rtp().port(), 12000u);
  EXPECT_EQ(updates.back().session.callee().remote(0).sdp_rtp().port(), 42000u);
}

// BUG (services/control/sessions/session_manager.cc: ApplySdp tells the worker, line 58, inside the
// Change of Answer, lines 155-177): the worker is told before the versioned write, and nothing tells
// it again when the change then gives up. Two answers with different to-tags (a forked INVITE
// answered by two branches, seen by two replicas) both read the OFFERED record. B tells the worker
// its callee media, A tells the worker its own, B writes, A's write is ABORTED and its retry refused
// FAILED_PRECONDITION (forked). The worker now relays to branch A's media while the store and every
// watcher say branch B answered; the relay's last Update should be the stored record. The same
// happens whenever SessionWriter::Change gives up after kMaxWriteAttempts ABORTED writes, or a
// retried change fails (the session ended meanwhile). Expected: a change that gave up after telling
// the worker re-tells it the stored record (or the worker is told after the write).
TEST_F(SessionManagerReplicasTest, ForkedAnswersRacingLeaveTheWorkerOnTheStoredBranch) {
  const std::string id = MustAllocate(AllocateRequest()).session().session_id();
  relay_.BlockCall(RelayOp::kUpdate, 0);  // B, after telling the worker
  relay_.BlockCall(RelayOp::kUpdate, 1);  // A, after telling the worker
  absl::StatusOr<v1::AnswerSessionResponse> b;
  std::thread replica_b([&] { b = other_->Answer(AnswerRequest(id, "tt-b", Sdp("198.51.100.7", 42000)), kPbxA); });
  ASSERT_TRUE(relay_.WaitBlocked(RelayOp::kUpdate, 0));
  absl::StatusOr<v1::AnswerSessionResponse> a;
  std::thread replica_a([&] { a = manager_->Answer(AnswerRequest(id, "tt-a", Sdp("198.51.100.7", 44000)), kPbxA); });
  ASSERT_TRUE(relay_.WaitBlocked(RelayOp::kUpdate, 1));
  relay_.Release(RelayOp::kUpdate, 0);
  replica_b.join();
  relay_.Release(RelayOp::kUpdate, 1);
  replica_a.join();

  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a.status().code(), absl::StatusCode::kFailedPrecondition);
  const v1::Session stored = Stored(id);
  EXPECT_EQ(stored.callee().tag(), "tt-b");
  EXPECT_EQ(stored.callee().remote(0).sdp_rtp().port(), 42000u);
  const RelayCall last = relay_.Calls(RelayOp::kUpdate).back();
  EXPECT_EQ(last.session.callee().tag(), "tt-b");
  EXPECT_EQ(last.session.callee().remote(0).sdp_rtp().port(), 42000u);
}

TEST_F(SessionManagerReplicasTest, RacingAllocationsOfOneCallKeepOneSessionAndFreeTheLosers) {
  relay_.BlockCall(RelayOp::kCreate, 0);
  absl::StatusOr<v1::AllocateSessionResponse> a;
  std::thread replica_a([&] { a = manager_->Allocate(AllocateRequest("call-1", "ft"), kPbxA); });
  ASSERT_TRUE(relay_.WaitBlocked(RelayOp::kCreate, 0));
  auto b = other_->Allocate(AllocateRequest("call-1", "ft"), kPbxA);
  relay_.Release(RelayOp::kCreate, 0);
  replica_a.join();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();

  const std::string winner = b->session().session_id();
  const std::string loser = relay_.Calls(RelayOp::kCreate)[0].session_id;
  EXPECT_NE(winner, loser);
  // A's create lost the Call-ID: its relay session is freed and its call a re-offer of B's.
  EXPECT_EQ(a->session().session_id(), winner);
  EXPECT_EQ(a->session().version(), 2u);
  EXPECT_THAT(a->sdp(), HasSubstr(absl::StrCat("m=audio ", b->session().callee().relay(0).rtp().port(), " ")));
  const auto deletes = relay_.Calls(RelayOp::kDelete);
  ASSERT_EQ(deletes.size(), 1u);
  EXPECT_EQ(deletes[0].session_id, loser);
  EXPECT_THAT(relay_.Live(), ElementsAre(winner));
  EXPECT_EQ(StoredCount(), 1u);
  EXPECT_THAT(Types(Events()), ElementsAre(v1::SESSION_EVENT_TYPE_ALLOCATED, v1::SESSION_EVENT_TYPE_UPDATED));
  EXPECT_EQ(metrics_.sessions_active->Value(), 1.0);
}

TEST_F(SessionManagerReplicasTest, ManyRacingAllocationsEndWithOneLiveSessionPerCall) {
  constexpr int kCalls = 40;
  std::atomic<int> failures{0};
  auto allocate_all = [&](SessionManager* manager) {
    for (int i = 0; i < kCalls; ++i) {
      if (!manager->Allocate(AllocateRequest(absl::StrCat("call-", i), "ft"), kPbxA).ok()) ++failures;
    }
  };
  std::thread a(allocate_all, manager_.get());
  std::thread b(allocate_all, other_.get());
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(StoredCount(), static_cast<size_t>(kCalls));
  std::set<std::string> live;
  for (int i = 0; i < kCalls; ++i) {
    auto holder = store_.FindLive("pbx/a", absl::StrCat("call-", i), "ft");
    ASSERT_TRUE(holder.ok()) << holder.status();
    live.insert(holder->session_id());
  }
  EXPECT_EQ(relay_.Live(), live);  // every losing placement was freed
  EXPECT_EQ(relay_.Count(RelayOp::kCreate) - relay_.Count(RelayOp::kDelete), static_cast<size_t>(kCalls));
  EXPECT_EQ(metrics_.sessions_active->Value(), static_cast<double>(kCalls));
}

TEST_F(SessionManagerTest, EachBranchOfAForkedOfferIsItsOwnSessionAndARepeatedBranchIsAReoffer) {
  v1::AllocateSessionRequest first = AllocateRequest("call-fork", "ft-1");
  first.set_branch("z9hG4bK-1");
  v1::AllocateSessionRequest second = first;
  second.set_branch("z9hG4bK-2");
  const v1::Session a = MustAllocate(first).session();
  const v1::Session b = MustAllocate(second).session();
  EXPECT_NE(a.session_id(), b.session_id());
  EXPECT_EQ(a.branch(), "z9hG4bK-1");
  EXPECT_EQ(relay_.Count(RelayOp::kCreate), 2u);
  // The same branch again: the same session, its ports kept.
  const v1::AllocateSessionResponse again = MustAllocate(first);
  EXPECT_EQ(again.session().session_id(), a.session_id());
  EXPECT_EQ(again.session().callee().relay(0).rtp().port(), a.callee().relay(0).rtp().port());
  EXPECT_EQ(relay_.Count(RelayOp::kCreate), 2u);
  // No branch is a third call key.
  EXPECT_NE(MustAllocate(AllocateRequest("call-fork", "ft-1")).session().session_id(), a.session_id());
  // A branch is a token like a tag.
  v1::AllocateSessionRequest bad = first;
  bad.set_branch("has space");
  auto refused = manager_->Allocate(bad, kPbxA);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("branch"));
}

TEST_F(SessionManagerTest, ASignalingSourceWithoutPortIsTheIpAlone) {
  v1::AllocateSessionRequest request = AllocateRequest();
  request.mutable_signaling_source()->set_port(0);
  const v1::Session session = MustAllocate(request).session();
  EXPECT_EQ(session.caller().signaling_source().port(), 0u);
  EXPECT_EQ(session.caller().signaling_source().ip(), request.signaling_source().ip());
  request.mutable_signaling_source()->set_ip("not-an-ip");
  request.set_call_id("call-2");
  auto refused = manager_->Allocate(request, kPbxA);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("signaling_source.ip"));
}

TEST_F(SessionManagerTest, ADelayedReleaseEndsTheSessionAtItsDeadlineUnlessNewSdpRevivesIt) {
  SessionSweeper sweeper(&store_, &writer_);
  const std::string id = MustAllocate(AllocateRequest("call-d", "ft-1")).session().session_id();
  MustAnswer(AnswerRequest(id));
  Events();
  auto scheduled = manager_->Release(id, kPbxA, absl::Seconds(30));
  ASSERT_TRUE(scheduled.ok()) << scheduled.status();
  EXPECT_EQ(scheduled->state(), v1::SESSION_STATE_ANSWERED);
  EXPECT_EQ(FromProto(scheduled->release_at()), kT0 + absl::Seconds(30));
  EXPECT_THAT(Types(Events()), ElementsAre(v1::SESSION_EVENT_TYPE_RELEASE_SCHEDULED));
  EXPECT_EQ(relay_.Count(RelayOp::kDelete), 0u);
  // A second delayed release (the other side's BYE) keeps the earlier deadline.
  now_ = kT0 + absl::Seconds(10);
  ASSERT_TRUE(manager_->Release(id, kPbxA, absl::Seconds(30)).ok());
  EXPECT_EQ(FromProto(Stored(id).release_at()), kT0 + absl::Seconds(30));

  // New SDP before the deadline (a re-INVITE racing the BYE) calls the release off.
  ASSERT_TRUE(manager_->Update(UpdateRequest(id, v1::SIDE_CALLER, samples::kYealinkHoldReinvite), kPbxA).ok());
  EXPECT_FALSE(Stored(id).has_release_at());
  now_ = kT0 + absl::Seconds(31);
  EXPECT_EQ(sweeper.SweepExpired(), 0u);
  EXPECT_EQ(Stored(id).state(), v1::SESSION_STATE_ANSWERED);

  // Scheduled again and left alone: the sweeper ends it at the deadline, as released.
  ASSERT_TRUE(manager_->Release(id, kPbxA, absl::Seconds(5)).ok());
  now_ = kT0 + absl::Seconds(35);
  EXPECT_EQ(sweeper.SweepExpired(), 0u);
  now_ = kT0 + absl::Seconds(36);
  EXPECT_EQ(sweeper.SweepExpired(), 1u);
  EXPECT_EQ(Stored(id).state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(Stored(id).end_reason(), v1::SESSION_EVENT_TYPE_RELEASED);
  EXPECT_EQ(relay_.Count(RelayOp::kDelete), 1u);
  // The call key is free again: the same Call-ID and tag make a new call.
  EXPECT_NE(MustAllocate(AllocateRequest("call-d", "ft-1")).session().session_id(), id);
}

}  // namespace
}  // namespace latchkey::control
