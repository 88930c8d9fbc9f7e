#include "media-relay/sessions/leg_targets.h"

#include "gtest/gtest.h"

namespace latchkey::relay {
namespace {

RelayAddressing Addressing() {
  RelayAddressing addressing;
  addressing.own_ips = {*net::IpAddress::Parse("203.0.113.10")};
  addressing.port_min = 30000;
  addressing.port_max = 39999;
  return addressing;
}

v1::RemoteMedia* AddMedia(v1::Leg& leg, uint32_t index, const std::string& ip, uint32_t port) {
  v1::RemoteMedia* media = leg.add_remote();
  media->set_media_index(index);
  media->mutable_sdp_rtp()->set_ip(ip);
  media->mutable_sdp_rtp()->set_port(port);
  media->mutable_sdp_rtcp()->set_ip(ip);
  media->mutable_sdp_rtcp()->set_port(port + 1);
  return media;
}

v1::Session Offered() {
  v1::Session session;
  session.mutable_caller()->set_latching_mode(v1::LATCHING_MODE_SIGNALING_SOURCE);
  session.mutable_caller()->mutable_signaling_source()->set_ip("198.51.100.7");
  AddMedia(*session.mutable_caller(), 0, "198.51.100.7", 4000)->set_rtcp_mux(true);
  return session;
}

TEST(LegTargetsTest, BothLegsOpenOnlyWithTheAnswer) {
  v1::Session session = Offered();
  LegTargets offered = TargetsFor(session, 0, Addressing());
  EXPECT_FALSE(offered.caller.target.open);
  EXPECT_FALSE(offered.callee.target.open);
  EXPECT_TRUE(offered.callee.rtcp_mux) << "offered as the caller's";
  AddMedia(*session.mutable_callee(), 0, "192.0.2.20", 5000);
  LegTargets answered = TargetsFor(session, 0, Addressing());
  EXPECT_TRUE(answered.caller.target.open);
  EXPECT_TRUE(answered.callee.target.open);
  EXPECT_FALSE(answered.callee.rtcp_mux);
  // A stream the answer does not cover stays closed.
  AddMedia(*session.mutable_caller(), 1, "198.51.100.7", 4002);
  EXPECT_FALSE(TargetsFor(session, 1, Addressing()).caller.target.open);
}

TEST(LegTargetsTest, DirectionSsrcAndChainComeFromTheLeg) {
  v1::Session session = Offered();
  v1::RemoteMedia* media = session.mutable_caller()->mutable_remote(0);
  EXPECT_TRUE(TargetFor(session.caller(), 0, Addressing()).target.sending);
  for (v1::MediaDirection held : {v1::MEDIA_DIRECTION_RECVONLY, v1::MEDIA_DIRECTION_INACTIVE}) {
    media->set_direction(held);
    EXPECT_FALSE(TargetFor(session.caller(), 0, Addressing()).target.sending) << v1::MediaDirection_Name(held);
  }
  media->set_direction(v1::MEDIA_DIRECTION_SENDONLY);  // music on hold from this side: it sends
  EXPECT_TRUE(TargetFor(session.caller(), 0, Addressing()).target.sending);
  media->set_ssrc(0xCAFE);
  EXPECT_EQ(TargetFor(session.caller(), 0, Addressing()).target.expected_ssrc, 0xCAFEu);
  EXPECT_FALSE(TargetFor(session.caller(), 0, Addressing()).relay_chain);
  session.mutable_caller()->set_relay_chain(true);
  EXPECT_TRUE(TargetFor(session.caller(), 0, Addressing()).relay_chain);
}

TEST(LegTargetsTest, OwnPortsAndPrivateAddressesAreNotSendable) {
  v1::Session session = Offered();
  EXPECT_TRUE(TargetFor(session.caller(), 0, Addressing()).target.sdp_sendable);
  v1::RemoteMedia* media = session.mutable_caller()->mutable_remote(0);
  media->mutable_sdp_rtp()->set_ip("203.0.113.10");  // this relay, in its range
  media->mutable_sdp_rtp()->set_port(30002);
  EXPECT_FALSE(TargetFor(session.caller(), 0, Addressing()).target.sdp_sendable);
  media->mutable_sdp_rtp()->set_ip("127.0.0.53");  // a node-local resolver
  media->mutable_sdp_rtp()->set_port(53);
  EXPECT_FALSE(TargetFor(session.caller(), 0, Addressing()).target.sdp_sendable);
  media->mutable_sdp_rtcp()->set_ip("10.0.0.1");
  EXPECT_FALSE(TargetFor(session.caller(), 0, Addressing()).sdp_rtcp.has_value());
}

}  // namespace
}  // namespace latchkey::relay
