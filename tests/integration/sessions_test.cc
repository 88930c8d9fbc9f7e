// Relay sessions through the real latchkey-control and latchkey-relay binaries over loopback.
#include <signal.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/support/cluster.h"
#include "tests/integration/support/media.h"

namespace latchkey {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kFastHeartbeats[] = "worker_heartbeat_interval { nanos: 200000000 } worker_lost_after_missed: 3";

// A NATed desk phone's offer: private address, PCMU/PCMA/telephone-event, ICE candidates.
constexpr char kCallerOffer[] =
    "v=0\r\n"
    "o=- 1001 1 IN IP4 192.168.1.20\r\n"
    "s=-\r\n"
    "c=IN IP4 192.168.1.20\r\n"
    "t=0 0\r\n"
    "m=audio 4000 RTP/AVP 0 8 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-15\r\n"
    "a=candidate:1 1 UDP 2130706431 192.168.1.20 4000 typ host\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n";

constexpr char kCalleeAnswer[] =
    "v=0\r\n"
    "o=callee 2002 1 IN IP4 198.51.100.9\r\n"
    "s=-\r\n"
    "c=IN IP4 198.51.100.9\r\n"
    "t=0 0\r\n"
    "m=audio 16500 RTP/AVP 0 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n";

using testing::FirstMedia;
using testing::SdpMedia;

class SessionsTest : public ::testing::Test {
 protected:
  void StartControl(const std::string& extra_config = "", testing::ControlPorts ports = {}) {
    auto control = testing::LocalControl::Start(absl::StrCat(kFastHeartbeats, " ", extra_config), ports);
    ASSERT_TRUE(control.ok()) << control.status();
    control_ = *std::move(control);
    stub_ = control_->Stub();
  }
  void StartRelay(const std::string& id = "relay-a", const std::vector<std::string>& flags = {}) {
    auto relay = testing::LocalRelay::Start(*control_, id, flags);
    ASSERT_TRUE(relay.ok()) << relay.status();
    ASSERT_TRUE(testing::WaitForWorker(*stub_, id, absl::Seconds(10)));
    relays_.push_back(*std::move(relay));
  }

  grpc::Status Offer(const std::string& call_id, v1::AllocateSessionResponse* response,
                     const std::string& sdp = kCallerOffer) {
    v1::AllocateSessionRequest request;
    request.set_call_id(call_id);
    request.set_from_tag("caller-tag-1");
    request.set_sdp(sdp);
    *request.mutable_signaling_source() = testing::Address("203.0.113.7", 5060);
    grpc::ClientContext context;
    return stub_->AllocateSession(&context, request, response);
  }
  grpc::Status Answer(const std::string& session_id, v1::AnswerSessionResponse* response,
                      const std::string& sdp = kCalleeAnswer) {
    v1::AnswerSessionRequest request;
    request.set_session_id(session_id);
    request.set_to_tag("callee-tag-1");
    request.set_sdp(sdp);
    *request.mutable_signaling_source() = testing::Address("198.51.100.9", 5060);
    grpc::ClientContext context;
    return stub_->AnswerSession(&context, request, response);
  }
  v1::Session GetSession(const std::string& id) { return testing::GetSession(*stub_, id); }
  bool InRelayRange(int port, const testing::LocalRelay& relay) {
    return port >= relay.port_min() && port <= relay.port_max();
  }

  std::unique_ptr<testing::LocalControl> control_;
  std::unique_ptr<v1::NatControlService::Stub> stub_;
  std::vector<std::unique_ptr<testing::LocalRelay>> relays_;
};

TEST_F(SessionsTest, NoRelayRegisteredIsUnavailable) {
  StartControl();
  v1::AllocateSessionResponse response;
  grpc::Status status = Offer("call-none@pbx", &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(control_->Metrics(), HasSubstr("latchkey_session_placement_failures_total{reason=\"no_worker\"} 1"));
}

TEST_F(SessionsTest, FullCallOfferAnswerHoldReofferRelease) {
  StartControl();
  StartRelay();
  grpc::ClientContext watch_context;
  v1::WatchSessionsRequest watch;
  watch.set_call_id("call-1@pbx");
  auto events = stub_->WatchSessions(&watch_context, watch);
  events->WaitForInitialMetadata();

  v1::AllocateSessionResponse offer;
  ASSERT_TRUE(Offer("call-1@pbx", &offer).ok());
  const v1::Session& s = offer.session();
  EXPECT_EQ(s.state(), v1::SESSION_STATE_OFFERED);
  EXPECT_EQ(s.worker_id(), "relay-a");
  EXPECT_EQ(s.caller().verdict().state(), v1::NAT_STATE_BEHIND_NAT);
  EXPECT_THAT(s.caller().verdict().reasons(), ::testing::Contains(v1::NAT_REASON_SDP_PRIVATE));
  EXPECT_EQ(s.caller().latching_mode(), v1::LATCHING_MODE_SIGNALING_SOURCE);
  ASSERT_EQ(s.caller().remote_size(), 1);
  EXPECT_EQ(s.caller().remote(0).sdp_rtp().ip(), "192.168.1.20");
  EXPECT_EQ(s.caller().remote(0).sdp_rtp().port(), 4000u);

  // The callee is told to send to the relay, never to the phone's private address.
  const SdpMedia to_callee = FirstMedia(offer.sdp());
  EXPECT_EQ(to_callee.address, "127.0.0.1");
  EXPECT_TRUE(InRelayRange(to_callee.port, *relays_[0])) << offer.sdp();
  EXPECT_EQ(static_cast<uint32_t>(to_callee.port), s.callee().relay(0).rtp().port());
  EXPECT_THAT(offer.sdp(), Not(HasSubstr("192.168.1.20 4000")));
  EXPECT_THAT(offer.sdp(), Not(HasSubstr("a=candidate")));
  EXPECT_THAT(offer.sdp(), HasSubstr("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"));

  v1::AnswerSessionResponse answer;
  ASSERT_TRUE(Answer(s.session_id(), &answer).ok());
  EXPECT_EQ(answer.session().state(), v1::SESSION_STATE_ANSWERED);
  EXPECT_EQ(answer.session().callee().verdict().state(), v1::NAT_STATE_NOT_BEHIND_NAT);
  const SdpMedia to_caller = FirstMedia(answer.sdp());
  EXPECT_EQ(to_caller.address, "127.0.0.1");
  EXPECT_TRUE(InRelayRange(to_caller.port, *relays_[0]));
  EXPECT_NE(to_caller.port, to_callee.port);
  EXPECT_EQ(static_cast<uint32_t>(to_caller.port), answer.session().caller().relay(0).rtp().port());

  // The caller puts the call on hold: the callee sees sendonly through the same relay port.
  std::string hold = kCallerOffer;
  hold.replace(hold.find("a=sendrecv"), 10, "a=sendonly");
  hold.replace(hold.find("1001 1"), 6, "1001 2");
  v1::UpdateSessionRequest update;
  update.set_session_id(s.session_id());
  update.set_side(v1::SIDE_CALLER);
  update.set_sdp(hold);
  *update.mutable_signaling_source() = testing::Address("203.0.113.7", 5060);
  v1::UpdateSessionResponse updated;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->UpdateSession(&context, update, &updated).ok());
  }
  EXPECT_THAT(updated.sdp(), HasSubstr("a=sendonly"));
  EXPECT_EQ(FirstMedia(updated.sdp()).port, to_callee.port);
  EXPECT_EQ(updated.session().caller().remote(0).direction(), v1::MEDIA_DIRECTION_SENDONLY);

  // A repeated offer for the same Call-ID and from-tag keeps the session and its ports.
  v1::AllocateSessionResponse again;
  ASSERT_TRUE(Offer("call-1@pbx", &again).ok());
  EXPECT_EQ(again.session().session_id(), s.session_id());
  EXPECT_EQ(FirstMedia(again.sdp()).port, to_callee.port);

  v1::ListSessionsRequest list;
  list.set_worker_id("relay-a");
  v1::ListSessionsResponse listed;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ListSessions(&context, list, &listed).ok());
  }
  ASSERT_EQ(listed.sessions_size(), 1);

  v1::ReleaseSessionRequest release;
  release.set_session_id(s.session_id());
  v1::ReleaseSessionResponse released;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ReleaseSession(&context, release, &released).ok());
  }
  EXPECT_EQ(released.session().state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(GetSession(s.session_id()).end_reason(), v1::SESSION_EVENT_TYPE_RELEASED);
  {
    grpc::ClientContext context;
    v1::AnswerSessionResponse late;
    EXPECT_EQ(Answer(s.session_id(), &late).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }

  std::vector<v1::SessionEventType> seen;
  v1::WatchSessionsResponse event;
  while (seen.size() < 5 && events->Read(&event)) seen.push_back(event.type());
  watch_context.TryCancel();
  EXPECT_THAT(seen, ::testing::ElementsAre(v1::SESSION_EVENT_TYPE_ALLOCATED, v1::SESSION_EVENT_TYPE_ANSWERED,
                                           v1::SESSION_EVENT_TYPE_UPDATED, v1::SESSION_EVENT_TYPE_UPDATED,
                                           v1::SESSION_EVENT_TYPE_RELEASED));
  const std::string metrics = control_->Metrics();
  EXPECT_THAT(metrics, HasSubstr("latchkey_sessions_active 0"));
  EXPECT_THAT(metrics, HasSubstr("latchkey_session_allocations_total 1"));
  EXPECT_THAT(metrics, HasSubstr("latchkey_session_ends_total{reason=\"released\"} 1"));
}

TEST_F(SessionsTest, BadRequestsAreRejectedByField) {
  StartControl();
  StartRelay();
  struct Case {
    std::string name;
    std::function<void(v1::AllocateSessionRequest&)> mutate;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"no call id", [](auto& r) { r.clear_call_id(); }, "call_id"},
      {"call id with CRLF", [](auto& r) { r.set_call_id("a\r\nb"); }, "call_id"},
      {"no from tag", [](auto& r) { r.clear_from_tag(); }, "from_tag"},
      {"no sdp", [](auto& r) { r.clear_sdp(); }, "sdp"},
      {"not sdp", [](auto& r) { r.set_sdp("hello world"); }, "sdp"},
      {"sdp without media", [](auto& r) { r.set_sdp("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\n"); }, "sdp"},
      {"no signaling source", [](auto& r) { r.clear_signaling_source(); }, "signaling_source"},
      {"bad latching mode", [](auto& r) { r.mutable_options()->set_latching_mode(static_cast<v1::LatchingMode>(42)); },
       "options.latching_mode"},
      {"zero media timeout", [](auto& r) { r.mutable_options()->mutable_media_timeout()->set_seconds(0); },
       "options.media_timeout"},
  };
  for (const Case& c : cases) {
    v1::AllocateSessionRequest request;
    request.set_call_id("bad@pbx");
    request.set_from_tag("t");
    request.set_sdp(kCallerOffer);
    *request.mutable_signaling_source() = testing::Address("203.0.113.7", 5060);
    c.mutate(request);
    v1::AllocateSessionResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub_->AllocateSession(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name << ": " << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(c.field)) << c.name;
  }
  v1::AnswerSessionResponse answer;
  EXPECT_EQ(Answer("s-unknown", &answer).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::AllocateSessionResponse offer;
  ASSERT_TRUE(Offer("call-2@pbx", &offer).ok());
  // RFC 3264: the answer has exactly as many m= lines as the offer.
  const std::string two_streams = absl::StrCat(kCalleeAnswer, "m=video 0 RTP/AVP 96\r\n");
  grpc::Status status = Answer(offer.session().session_id(), &answer, two_streams);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("m= lines"));
  v1::UpdateSessionRequest update;
  update.set_session_id(offer.session().session_id());
  update.set_sdp(kCallerOffer);
  *update.mutable_signaling_source() = testing::Address("203.0.113.7", 5060);
  v1::UpdateSessionResponse updated;
  grpc::ClientContext context;
  status = stub_->UpdateSession(&context, update, &updated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("side"));
}

TEST_F(SessionsTest, FullOrDrainingRelaysAreExhausted) {
  StartControl();
  StartRelay("relay-a", {"--max_sessions=1"});
  v1::AllocateSessionResponse first, second;
  ASSERT_TRUE(Offer("call-a@pbx", &first).ok());
  grpc::Status status = Offer("call-b@pbx", &second);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();

  StartRelay("relay-b");
  ASSERT_TRUE(Offer("call-c@pbx", &second).ok());
  EXPECT_EQ(second.session().worker_id(), "relay-b");

  v1::DrainWorkerRequest drain;
  drain.set_worker_id("relay-b");
  v1::DrainWorkerResponse drained;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->DrainWorker(&context, drain, &drained).ok());
  }
  EXPECT_EQ(drained.worker().state(), v1::WORKER_STATE_DRAINING);
  status = Offer("call-d@pbx", &second);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  // The drained relay keeps its call.
  EXPECT_EQ(GetSession(second.session().session_id()).state(), v1::SESSION_STATE_OFFERED);

  drain.set_worker_id("no-such-relay");
  grpc::ClientContext context;
  EXPECT_EQ(stub_->DrainWorker(&context, drain, &drained).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SessionsTest, KilledRelayIsReportedLostWithItsSessions) {
  StartControl();
  StartRelay();
  v1::AllocateSessionResponse offer;
  ASSERT_TRUE(Offer("call-lost@pbx", &offer).ok());
  grpc::ClientContext watch_context;
  v1::WatchSessionsRequest watch;
  auto events = stub_->WatchSessions(&watch_context, watch);
  events->WaitForInitialMetadata();

  const absl::Time killed = absl::Now();
  relays_[0]->process().Stop(SIGKILL);
  v1::WatchSessionsResponse event;
  ASSERT_TRUE(events->Read(&event));
  const absl::Duration detection = absl::Now() - killed;
  EXPECT_EQ(event.type(), v1::SESSION_EVENT_TYPE_WORKER_LOST);
  EXPECT_EQ(event.session().session_id(), offer.session().session_id());
  // 3 missed heartbeats of 200 ms, plus one sweep interval and scheduling slack.
  EXPECT_LT(detection, absl::Seconds(2)) << detection;
  watch_context.TryCancel();
  EXPECT_EQ(GetSession(offer.session().session_id()).end_reason(), v1::SESSION_EVENT_TYPE_WORKER_LOST);
  EXPECT_THAT(control_->Metrics(), HasSubstr("latchkey_workers{state=\"lost\"} 1"));
}

TEST_F(SessionsTest, ControlRestartLosesNoSession) {
  const testing::ControlPorts ports = testing::ControlPorts::Free();
  StartControl("", ports);
  StartRelay();
  v1::AllocateSessionResponse offer;
  ASSERT_TRUE(Offer("call-restart@pbx", &offer).ok());
  v1::AnswerSessionResponse answer;
  ASSERT_TRUE(Answer(offer.session().session_id(), &answer).ok());

  control_->process().Stop(SIGKILL);
  control_.reset();
  StartControl("", ports);
  // The relay notices within a heartbeat or two, registers again and re-announces the call.
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        v1::GetSessionRequest request;
        request.set_session_id(offer.session().session_id());
        v1::GetSessionResponse response;
        grpc::ClientContext context;
        return stub_->GetSession(&context, request, &response).ok();
      },
      absl::Seconds(10)));
  const v1::Session restored = GetSession(offer.session().session_id());
  EXPECT_EQ(restored.state(), v1::SESSION_STATE_ANSWERED);
  EXPECT_EQ(restored.worker_id(), "relay-a");
  EXPECT_EQ(restored.caller().relay(0).rtp().port(), answer.session().caller().relay(0).rtp().port());
  EXPECT_EQ(restored.callee().tag(), "callee-tag-1");
  // And it can still be changed and released through the restarted control.
  v1::ReleaseSessionRequest release;
  release.set_session_id(restored.session_id());
  v1::ReleaseSessionResponse released;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->ReleaseSession(&context, release, &released).ok());
  EXPECT_THAT(control_->Metrics(), HasSubstr("latchkey_sessions_active 0"));
}

TEST_F(SessionsTest, UnansweredOfferExpiresAndFreesRelayPorts) {
  StartControl("session_offer_timeout { seconds: 1 }");
  StartRelay();
  v1::AllocateSessionResponse offer;
  ASSERT_TRUE(Offer("call-ringing@pbx", &offer).ok());
  ASSERT_TRUE(testing::WaitFor([&] { return GetSession(offer.session().session_id()).state() == v1::SESSION_STATE_ENDED; },
                               absl::Seconds(5)));
  EXPECT_EQ(GetSession(offer.session().session_id()).end_reason(), v1::SESSION_EVENT_TYPE_EXPIRED);
  // The relay dropped it too: its next heartbeat reports no sessions.
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        v1::ListWorkersResponse workers;
        grpc::ClientContext context;
        return stub_->ListWorkers(&context, v1::ListWorkersRequest(), &workers).ok() && workers.workers_size() == 1 &&
               workers.workers(0).load().sessions() == 0 &&
               workers.workers(0).load().free_ports() + 4 <= workers.workers(0).load().total_ports();  // quarantined
      },
      absl::Seconds(3)));
}

TEST_F(SessionsTest, FinalTimeoutEndsAnAnsweredCall) {
  StartControl();
  StartRelay();
  v1::AllocateSessionRequest request;
  request.set_call_id("call-final@pbx");
  request.set_from_tag("caller-tag-1");
  request.set_sdp(kCallerOffer);
  *request.mutable_signaling_source() = testing::Address("203.0.113.7", 5060);
  request.mutable_options()->mutable_final_timeout()->set_seconds(2);
  v1::AllocateSessionResponse offer;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->AllocateSession(&context, request, &offer).ok());
  EXPECT_EQ(offer.session().options().final_timeout().seconds(), 2);
  v1::AnswerSessionResponse answer;
  ASSERT_TRUE(Answer(offer.session().session_id(), &answer).ok());
  EXPECT_EQ(GetSession(offer.session().session_id()).state(), v1::SESSION_STATE_ANSWERED);
  ASSERT_TRUE(testing::WaitFor([&] { return GetSession(offer.session().session_id()).state() == v1::SESSION_STATE_ENDED; },
                               absl::Seconds(6)));
  EXPECT_EQ(GetSession(offer.session().session_id()).end_reason(), v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT);
  EXPECT_THAT(control_->Metrics(), HasSubstr("latchkey_session_ends_total{reason=\"final_timeout\"} 1"));
  EXPECT_TRUE(testing::WaitFor([&] { return absl::StrContains(relays_[0]->Metrics(), "latchkey_relay_sessions 0"); },
                               absl::Seconds(3)));
}

TEST_F(SessionsTest, RelayEnforcesTheFinalTimeoutWhileControlIsDown) {
  const testing::ControlPorts ports = testing::ControlPorts::Free();
  StartControl("", ports);
  StartRelay();
  v1::AllocateSessionRequest request;
  request.set_call_id("call-final-alone@pbx");
  request.set_from_tag("caller-tag-1");
  request.set_sdp(kCallerOffer);
  *request.mutable_signaling_source() = testing::Address("203.0.113.7", 5060);
  request.mutable_options()->mutable_final_timeout()->set_seconds(2);
  v1::AllocateSessionResponse offer;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->AllocateSession(&context, request, &offer).ok());

  control_->process().Stop(SIGKILL);
  control_.reset();
  // Alone, the relay notices the deadline itself...
  ASSERT_TRUE(testing::WaitFor(
      [&] { return absl::StrContains(relays_[0]->Metrics(), "latchkey_relay_final_timeouts_total 1"); },
      absl::Seconds(6)));
  // ...and tells the restarted control, which ends the call and frees its ports.
  StartControl("", ports);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return absl::StrContains(control_->Metrics(), "latchkey_session_ends_total{reason=\"final_timeout\"} 1"); },
      absl::Seconds(10)));
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        const std::string metrics = relays_[0]->Metrics();
        return absl::StrContains(metrics, "latchkey_relay_sessions 0") &&
               absl::StrContains(metrics, "latchkey_relay_sessions_closed_total{reason=\"final_timeout\"} 1");
      },
      absl::Seconds(3)));
}

}  // namespace
}  // namespace latchkey
