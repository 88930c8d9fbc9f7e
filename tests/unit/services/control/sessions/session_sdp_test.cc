#include "services/control/sessions/session_sdp.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "common/time/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/services/control/sdp/sample_sdps.h"
#include "tests/unit/services/control/sessions/session_test_util.h"

namespace latchkey::control {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using session_test::Address;
namespace samples = sdp::samples;

v1::AllocateSessionRequest ValidRequest() {
  v1::AllocateSessionRequest request;
  request.set_call_id("a84b4c76e66710@pc33.example.com");
  request.set_from_tag("1928301774");
  return request;
}

void ExpectInvalid(const absl::Status& status, const std::string& field) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), StartsWith(field + ":")) << status;
}

TEST(SessionSdpTest, CheckAllocateRequestAcceptsAValidRequest) {
  v1::AllocateSessionRequest request = ValidRequest();
  request.mutable_options()->set_latching_mode(v1::LATCHING_MODE_STRICT);
  request.mutable_options()->set_ice(v1::ICE_HANDLING_KEEP);
  request.mutable_options()->set_callee_ip_family(v1::IP_FAMILY_IPV6);
  *request.mutable_options()->mutable_media_timeout() = ToProto(absl::Seconds(1));
  *request.mutable_options()->mutable_final_timeout() = ToProto(absl::Hours(24 * 7));
  EXPECT_TRUE(CheckAllocateRequest(request).ok()) << CheckAllocateRequest(request);
}

TEST(SessionSdpTest, CheckAllocateRequestNamesTheBadField) {
  {
    v1::AllocateSessionRequest request = ValidRequest();
    request.clear_call_id();
    ExpectInvalid(CheckAllocateRequest(request), "call_id");
  }
  {
    v1::AllocateSessionRequest request = ValidRequest();
    request.set_call_id("has space");
    ExpectInvalid(CheckAllocateRequest(request), "call_id");
  }
  {
    v1::AllocateSessionRequest request = ValidRequest();
    request.set_call_id(std::string(257, 'c'));
    ExpectInvalid(CheckAllocateRequest(request), "call_id");
    request.set_call_id(std::string(256, 'c'));
    EXPECT_TRUE(CheckAllocateRequest(request).ok());
  }
  {
    v1::AllocateSessionRequest request = ValidRequest();
    request.clear_from_tag();
    ExpectInvalid(CheckAllocateRequest(request), "from_tag");
    request.set_from_tag(std::string(129, 't'));
    ExpectInvalid(CheckAllocateRequest(request), "from_tag");
    request.set_from_tag("tag\x01");
    ExpectInvalid(CheckAllocateRequest(request), "from_tag");
  }
  {
    v1::AllocateSessionRequest request = ValidRequest();
    request.mutable_options()->set_latching_mode(static_cast<v1::LatchingMode>(99));
    ExpectInvalid(CheckAllocateRequest(request), "options.latching_mode");
  }
  {
    v1::AllocateSessionRequest request = ValidRequest();
    request.mutable_options()->set_ice(static_cast<v1::IceHandling>(42));
    ExpectInvalid(CheckAllocateRequest(request), "options.ice");
  }
  {
    v1::AllocateSessionRequest request = ValidRequest();
    request.mutable_options()->set_callee_ip_family(static_cast<v1::IpFamily>(7));
    ExpectInvalid(CheckAllocateRequest(request), "options.callee_ip_family");
  }
  {
    v1::AllocateSessionRequest request = ValidRequest();
    *request.mutable_options()->mutable_media_timeout() = ToProto(absl::Milliseconds(500));
    ExpectInvalid(CheckAllocateRequest(request), "options.media_timeout");
    *request.mutable_options()->mutable_media_timeout() = ToProto(absl::Hours(25));
    ExpectInvalid(CheckAllocateRequest(request), "options.media_timeout");
  }
  {
    v1::AllocateSessionRequest request = ValidRequest();
    *request.mutable_options()->mutable_final_timeout() = ToProto(absl::ZeroDuration());
    ExpectInvalid(CheckAllocateRequest(request), "options.final_timeout");
    *request.mutable_options()->mutable_final_timeout() = ToProto(absl::Hours(24 * 7) + absl::Seconds(1));
    ExpectInvalid(CheckAllocateRequest(request), "options.final_timeout");
  }
}

class SessionSdpDescribeTest : public ::testing::Test {
 protected:
  SessionSdpDescribeTest() : detector_(NatDetector::Create({}).value()) {}

  absl::StatusOr<sdp::SessionDescription> Describe(v1::Side side, const std::string& text,
                                                   const v1::SocketAddress& source,
                                                   const RelayAddressCheck& is_relay = nullptr) {
    return DescribeLeg(session_, side, text, source, detector_, is_relay);
  }

  NatDetector detector_;
  v1::Session session_;
};

TEST_F(SessionSdpDescribeTest, BehindNatCallerGetsRemoteMediaVerdictAndSignalingSourceLatching) {
  auto description = Describe(v1::SIDE_CALLER, samples::kYealinkOffer, Address("203.0.113.5", 5060));
  ASSERT_TRUE(description.ok()) << description.status();
  EXPECT_EQ(description->media().size(), 1u);
  const v1::Leg& leg = session_.caller();
  EXPECT_EQ(leg.signaling_source().ip(), "203.0.113.5");
  EXPECT_EQ(leg.verdict().state(), v1::NAT_STATE_BEHIND_NAT);
  EXPECT_EQ(leg.latching_mode(), v1::LATCHING_MODE_SIGNALING_SOURCE);
  ASSERT_EQ(leg.remote_size(), 1);
  EXPECT_EQ(leg.remote(0).media_index(), 0u);
  EXPECT_EQ(leg.remote(0).media_type(), "audio");
  EXPECT_EQ(leg.remote(0).sdp_rtp().ip(), "192.168.1.101");
  EXPECT_EQ(leg.remote(0).sdp_rtp().port(), 11780u);
  EXPECT_EQ(leg.remote(0).sdp_rtcp().port(), 11781u);
  EXPECT_EQ(leg.remote(0).direction(), v1::MEDIA_DIRECTION_SENDRECV);
  EXPECT_FALSE(leg.relay_chain());
  // The other leg is untouched.
  EXPECT_EQ(session_.callee().remote_size(), 0);
  EXPECT_EQ(session_.callee().verdict().state(), v1::NAT_STATE_UNSPECIFIED);
}

TEST_F(SessionSdpDescribeTest, PublicCalleeGetsHeuristicLatching) {
  auto description = Describe(v1::SIDE_CALLEE, samples::kFreeswitchAnswer, Address("198.51.100.7", 5060));
  ASSERT_TRUE(description.ok()) << description.status();
  const v1::Leg& leg = session_.callee();
  EXPECT_EQ(leg.verdict().state(), v1::NAT_STATE_NOT_BEHIND_NAT);
  EXPECT_EQ(leg.latching_mode(), v1::LATCHING_MODE_HEURISTIC);
  ASSERT_EQ(leg.remote_size(), 1);
  EXPECT_EQ(leg.remote(0).sdp_rtp().ip(), "198.51.100.7");
  EXPECT_EQ(leg.remote(0).sdp_rtcp().port(), 24579u);
  EXPECT_EQ(session_.caller().remote_size(), 0);
}

TEST_F(SessionSdpDescribeTest, ExplicitLatchingModeWinsOverTheVerdict) {
  session_.mutable_options()->set_latching_mode(v1::LATCHING_MODE_STRICT);
  ASSERT_TRUE(Describe(v1::SIDE_CALLER, samples::kYealinkOffer, Address("203.0.113.5", 5060)).ok());
  EXPECT_EQ(session_.caller().verdict().state(), v1::NAT_STATE_BEHIND_NAT);
  EXPECT_EQ(session_.caller().latching_mode(), v1::LATCHING_MODE_STRICT);
}

TEST_F(SessionSdpDescribeTest, DirectionMuxAndSsrcComeFromTheSdp) {
  ASSERT_TRUE(Describe(v1::SIDE_CALLER, samples::kYealinkHoldReinvite, Address("203.0.113.5", 5060)).ok());
  EXPECT_EQ(session_.caller().remote(0).direction(), v1::MEDIA_DIRECTION_SENDONLY);
  ASSERT_TRUE(Describe(v1::SIDE_CALLER, samples::kZoiperOffer, Address("203.0.113.5", 5060)).ok());
  EXPECT_TRUE(session_.caller().remote(0).rtcp_mux());
  ASSERT_TRUE(Describe(v1::SIDE_CALLER, samples::kChromeWebrtcOffer, Address("198.51.100.77", 5060)).ok());
  ASSERT_EQ(session_.caller().remote_size(), 2);  // replaced, not appended
  EXPECT_EQ(session_.caller().remote(0).ssrc(), 3735928559u);
  EXPECT_EQ(session_.caller().remote(1).media_type(), "video");
  EXPECT_EQ(session_.caller().remote(1).media_index(), 1u);
}

TEST_F(SessionSdpDescribeTest, RelayChainFollowsTheRelayAddressCheck) {
  std::string asked_ip;
  uint32_t asked_port = 0;
  RelayAddressCheck is_relay = [&](const std::string& ip, uint32_t port) {
    asked_ip = ip;
    asked_port = port;
    return ip == "198.51.100.7" && port == 24578;
  };
  ASSERT_TRUE(Describe(v1::SIDE_CALLEE, samples::kFreeswitchAnswer, Address("198.51.100.7", 5060), is_relay).ok());
  EXPECT_EQ(asked_ip, "198.51.100.7");
  EXPECT_EQ(asked_port, 24578u);
  EXPECT_TRUE(session_.callee().relay_chain());
  // New SDP that names no relay clears the mark.
  ASSERT_TRUE(Describe(v1::SIDE_CALLEE, samples::kAsteriskOffer, Address("203.0.113.50", 5060), is_relay).ok());
  EXPECT_FALSE(session_.callee().relay_chain());
  // No check configured: never a chain.
  ASSERT_TRUE(Describe(v1::SIDE_CALLEE, samples::kFreeswitchAnswer, Address("198.51.100.7", 5060)).ok());
  EXPECT_FALSE(session_.callee().relay_chain());
}

TEST_F(SessionSdpDescribeTest, ASourcePortOfZeroIsUnknownAndTheIpStillDecides) {
  // ng carries the signalling IP only.
  ASSERT_TRUE(Describe(v1::SIDE_CALLER, samples::kYealinkOffer, Address("203.0.113.5", 0)).ok());
  EXPECT_EQ(session_.caller().signaling_source().port(), 0u);
  EXPECT_EQ(session_.caller().verdict().state(), v1::NAT_STATE_BEHIND_NAT);
}

TEST_F(SessionSdpDescribeTest, RefusesBadSourceAndBadSdpNamingTheField) {
  auto bad_ip = Describe(v1::SIDE_CALLER, samples::kYealinkOffer, Address("300.1.1.1", 5060));
  ExpectInvalid(bad_ip.status(), "signaling_source.ip");
  auto bad_port = Describe(v1::SIDE_CALLER, samples::kYealinkOffer, Address("203.0.113.5", 65536));
  ExpectInvalid(bad_port.status(), "signaling_source.port");
  auto empty = Describe(v1::SIDE_CALLER, "", Address("203.0.113.5", 5060));
  ExpectInvalid(empty.status(), "sdp");
  auto garbage = Describe(v1::SIDE_CALLER, "v=0\r\nc=IN IP4 not-an-ip\r\n", Address("203.0.113.5", 5060));
  ExpectInvalid(garbage.status(), "sdp");
  auto no_media = Describe(v1::SIDE_CALLER, "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n",
                           Address("203.0.113.5", 5060));
  ExpectInvalid(no_media.status(), "sdp");
  EXPECT_THAT(std::string(no_media.status().message()), HasSubstr("no m= line"));
  // Nothing was applied.
  EXPECT_FALSE(session_.has_caller());
}

std::string SdpWithStreams(int streams) {
  std::string text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n";
  for (int i = 0; i < streams; ++i) absl::StrAppend(&text, "m=audio ", 10000 + 2 * i, " RTP/AVP 0\r\n");
  return text;
}

TEST_F(SessionSdpDescribeTest, RefusesMoreThanSixteenStreams) {
  ASSERT_TRUE(Describe(v1::SIDE_CALLER, SdpWithStreams(16), Address("192.0.2.1", 5060)).ok());
  EXPECT_EQ(session_.caller().remote_size(), 16);
  auto seventeen = Describe(v1::SIDE_CALLER, SdpWithStreams(17), Address("192.0.2.1", 5060));
  ExpectInvalid(seventeen.status(), "sdp");
  EXPECT_THAT(std::string(seventeen.status().message()), HasSubstr("17 m= lines"));
  EXPECT_EQ(session_.caller().remote_size(), 16);
}

TEST_F(SessionSdpDescribeTest, RefusesFewerStreamsThanTheSessionKnows) {
  // The relay carries two streams (placed on the offer); either side dropping one is refused.
  for (int i = 0; i < 2; ++i) {
    session_.mutable_caller()->add_relay()->set_media_index(static_cast<uint32_t>(i));
  }
  auto fewer = Describe(v1::SIDE_CALLEE, SdpWithStreams(1), Address("192.0.2.1", 5060));
  ExpectInvalid(fewer.status(), "sdp");
  EXPECT_THAT(std::string(fewer.status().message()), HasSubstr("1 m= lines but the session has 2"));
  EXPECT_TRUE(Describe(v1::SIDE_CALLEE, SdpWithStreams(2), Address("192.0.2.1", 5060)).ok());
  EXPECT_TRUE(Describe(v1::SIDE_CALLEE, SdpWithStreams(3), Address("192.0.2.1", 5060)).ok());
}

// A session whose relay endpoints are set as a worker would: callee leg at 192.0.2.20:30002.
v1::Session PlacedSession(int streams) {
  v1::Session session;
  for (int i = 0; i < streams; ++i) {
    const uint32_t port = 30000 + 4 * static_cast<uint32_t>(i);
    v1::RelayEndpoint* caller = session.mutable_caller()->add_relay();
    caller->set_media_index(static_cast<uint32_t>(i));
    *caller->mutable_rtp() = Address("192.0.2.10", port);
    *caller->mutable_rtcp() = Address("192.0.2.10", port + 1);
    v1::RelayEndpoint* callee = session.mutable_callee()->add_relay();
    callee->set_media_index(static_cast<uint32_t>(i));
    *callee->mutable_rtp() = Address("192.0.2.20", port + 2);
    *callee->mutable_rtcp() = Address("192.0.2.20", port + 3);
  }
  return session;
}

TEST(SessionSdpRewriteTest, CallerSdpGetsTheCalleeLegRelayPorts) {
  const v1::Session session = PlacedSession(1);
  auto description = sdp::SessionDescription::Parse(samples::kYealinkOffer);
  ASSERT_TRUE(description.ok());
  auto rewritten = RewriteForOtherSide(session, v1::SIDE_CALLER, *description);
  ASSERT_TRUE(rewritten.ok()) << rewritten.status();
  EXPECT_THAT(*rewritten, HasSubstr("c=IN IP4 192.0.2.20\r\n"));
  EXPECT_THAT(*rewritten, HasSubstr("m=audio 30002 RTP/AVP 9 0 8 18 101\r\n"));
  EXPECT_THAT(*rewritten, Not(HasSubstr("c=IN IP4 192.168.1.101")));
  EXPECT_THAT(*rewritten, Not(HasSubstr("30000")));  // the caller leg's port is not the callee's to use
  // The origin stays unless asked.
  EXPECT_THAT(*rewritten, HasSubstr("o=- 20045 20045 IN IP4 192.168.1.101\r\n"));
}

TEST(SessionSdpRewriteTest, CalleeSdpGetsTheCallerLegRelayPorts) {
  const v1::Session session = PlacedSession(1);
  auto description = sdp::SessionDescription::Parse(samples::kFreeswitchAnswer);
  ASSERT_TRUE(description.ok());
  auto rewritten = RewriteForOtherSide(session, v1::SIDE_CALLEE, *description);
  ASSERT_TRUE(rewritten.ok()) << rewritten.status();
  EXPECT_THAT(*rewritten, HasSubstr("c=IN IP4 192.0.2.10\r\n"));
  EXPECT_THAT(*rewritten, HasSubstr("m=audio 30000 "));
  EXPECT_THAT(*rewritten, HasSubstr("a=rtcp:30001"));
  EXPECT_THAT(*rewritten, Not(HasSubstr("198.51.100.7 ")));
}

TEST(SessionSdpRewriteTest, OptionsDecideIceAndOrigin) {
  v1::Session session = PlacedSession(1);
  auto description = sdp::SessionDescription::Parse(samples::kLinphoneIceOffer);
  ASSERT_TRUE(description.ok());
  auto removed = RewriteForOtherSide(session, v1::SIDE_CALLER, *description);  // ice UNSPECIFIED: remove
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_THAT(*removed, Not(HasSubstr("a=candidate")));
  EXPECT_THAT(*removed, Not(HasSubstr("a=ice-ufrag")));

  session.mutable_options()->set_ice(v1::ICE_HANDLING_KEEP);
  session.mutable_options()->set_rewrite_origin(true);
  auto kept = RewriteForOtherSide(session, v1::SIDE_CALLER, *description);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_THAT(*kept, HasSubstr("a=candidate:1 1 UDP"));
  EXPECT_THAT(*kept, HasSubstr("o=alice 3058 2361 IN IP4 192.0.2.20"));
}

TEST(SessionSdpRewriteTest, AStreamWithoutRelayPortsIsInvalid) {
  const v1::Session session = PlacedSession(1);
  auto description = sdp::SessionDescription::Parse(samples::kAudioVideoOffer);
  ASSERT_TRUE(description.ok());
  auto rewritten = RewriteForOtherSide(session, v1::SIDE_CALLER, *description);
  ExpectInvalid(rewritten.status(), "sdp");

  const v1::Session two = PlacedSession(2);
  auto both = RewriteForOtherSide(two, v1::SIDE_CALLER, *description);
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_THAT(*both, HasSubstr("m=audio 30002 "));
  EXPECT_THAT(*both, HasSubstr("m=video 30006 "));
}

TEST(SessionSdpFamilyTest, CalleeFamilyIsTheOneAskedForElseTheCallers) {
  v1::Session session;
  EXPECT_EQ(CalleeFamily(session), 4u);  // nothing known
  session.mutable_caller()->add_remote()->mutable_sdp_rtp()->set_ip("2001:db8::1");
  EXPECT_EQ(CalleeFamily(session), 6u);
  session.mutable_options()->set_callee_ip_family(v1::IP_FAMILY_IPV4);
  EXPECT_EQ(CalleeFamily(session), 4u);
  session.mutable_caller()->mutable_remote(0)->mutable_sdp_rtp()->set_ip("192.0.2.1");
  session.mutable_options()->set_callee_ip_family(v1::IP_FAMILY_IPV6);
  EXPECT_EQ(CalleeFamily(session), 6u);
  session.mutable_options()->set_callee_ip_family(v1::IP_FAMILY_UNSPECIFIED);
  EXPECT_EQ(CalleeFamily(session), 4u);
  // A stream without an address (no c=) is skipped for the next one.
  v1::Session skip;
  skip.mutable_caller()->add_remote();
  skip.mutable_caller()->add_remote()->mutable_sdp_rtp()->set_ip("2001:db8::2");
  EXPECT_EQ(CalleeFamily(skip), 6u);
}

TEST(SessionSdpFamilyTest, LegOfPicksTheSide) {
  v1::Session session;
  LegOf(session, v1::SIDE_CALLER)->set_tag("a");
  LegOf(session, v1::SIDE_CALLEE)->set_tag("b");
  EXPECT_EQ(session.caller().tag(), "a");
  EXPECT_EQ(session.callee().tag(), "b");
}

}  // namespace
}  // namespace latchkey::control
