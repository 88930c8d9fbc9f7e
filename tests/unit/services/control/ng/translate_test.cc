#include "services/control/ng/translate.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::control::ng {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kSdp[] =
    "v=0\r\no=- 1 1 IN IP4 192.168.1.20\r\ns=-\r\nc=IN IP4 192.168.1.20\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

Command Offer(std::initializer_list<const char*> flags = {}) {
  Command command;
  command.command = "offer";
  command.call_id = "c";
  command.from_tag = "f";
  command.sdp = kSdp;
  for (const char* flag : flags) command.flags.insert(NormaliseToken(flag));
  return command;
}

TEST(NgTranslateTest, TrustTheSdpByDefaultAsRtpengineDoes) {
  auto t = Translate(Offer(), "10.0.0.5");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->options.latching_mode(), v1::LATCHING_MODE_HEURISTIC);
  EXPECT_EQ(t->options.ice(), v1::ICE_HANDLING_REMOVE);
  // No received-from: the ng client's own address, port unknown.
  EXPECT_EQ(t->signaling_source.ip(), "10.0.0.5");
  EXPECT_EQ(t->signaling_source.port(), 0u);
  EXPECT_THAT(t->warnings, IsEmpty());
}

TEST(NgTranslateTest, LatchingFlagsMapOntoLatchingModes) {
  Command sip_source = Offer({"SIP-source-address"});
  sip_source.received_from_family = "IP4";
  sip_source.received_from_ip = "203.0.113.9";
  auto t = Translate(sip_source, "10.0.0.5");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->options.latching_mode(), v1::LATCHING_MODE_SIGNALING_SOURCE);
  EXPECT_EQ(t->signaling_source.ip(), "203.0.113.9");
  EXPECT_EQ(Translate(Offer({"asymmetric"}), "10.0.0.5")->options.latching_mode(), v1::LATCHING_MODE_STRICT);
  EXPECT_EQ(Translate(Offer({"trust-address"}), "10.0.0.5")->options.latching_mode(), v1::LATCHING_MODE_HEURISTIC);
  // SIP-source-address needs the source.
  EXPECT_THAT(Translate(Offer({"SIP-source-address"}), "10.0.0.5").status().message(), HasSubstr("received-from"));
  // media-address overrides received-from.
  Command media = sip_source;
  media.media_address = "198.51.100.1";
  EXPECT_EQ(Translate(media, "10.0.0.5")->signaling_source.ip(), "198.51.100.1");
}

TEST(NgTranslateTest, ReceivedFromMustBeAnAddressOfItsFamily) {
  Command command = Offer();
  command.received_from_family = "IP6";
  command.received_from_ip = "192.0.2.1";
  EXPECT_THAT(Translate(command, "10.0.0.5").status().message(), HasSubstr("received-from"));
  command.received_from_ip = "not-an-ip";
  EXPECT_THAT(Translate(command, "10.0.0.5").status().message(), HasSubstr("received-from"));
  command.received_from_family = "IP6";
  command.received_from_ip = "2001:db8::1";
  EXPECT_EQ(Translate(command, "10.0.0.5")->signaling_source.ip(), "2001:db8::1");
}

TEST(NgTranslateTest, OptionsFromReplaceIceAndAddressFamily) {
  Command command = Offer();
  command.replace = {"origin", "session connection"};
  command.address_family = "IP6";
  command.ice = "optional";
  auto t = Translate(command, "10.0.0.5");
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->options.rewrite_origin());
  EXPECT_EQ(t->options.callee_ip_family(), v1::IP_FAMILY_IPV6);
  EXPECT_EQ(t->options.ice(), v1::ICE_HANDLING_REMOVE);
  command.address_family = "IPX";
  EXPECT_THAT(Translate(command, "10.0.0.5").status().message(), HasSubstr("address-family"));
}

TEST(NgTranslateTest, WhatTheRelayCannotDoIsRefusedNotPromised) {
  Command force = Offer();
  force.ice = "force";
  EXPECT_THAT(Translate(force, "10.0.0.5").status().message(), HasSubstr("ICE"));
  Command srtp = Offer();
  srtp.transport_protocol = "RTP/SAVP";
  EXPECT_THAT(Translate(srtp, "10.0.0.5").status().message(), HasSubstr("transport-protocol"));
  Command same = Offer();
  same.transport_protocol = "RTP/AVP";  // what the SDP says already: nothing to translate
  EXPECT_TRUE(Translate(same, "10.0.0.5").ok());
  Command transcode = Offer();
  transcode.media_features = {"codec"};
  EXPECT_THAT(Translate(transcode, "10.0.0.5").status().message(), HasSubstr("codec"));
  // Recording is not a promise in the SDP: accepted, with a warning.
  Command record = Offer();
  record.media_features = {"record-call"};
  auto t = Translate(record, "10.0.0.5");
  ASSERT_TRUE(t.ok());
  EXPECT_THAT(t->warnings.front(), HasSubstr("record-call"));
  Command demux = Offer();
  demux.rtcp_mux = {"demux"};
  EXPECT_THAT(Translate(demux, "10.0.0.5")->warnings, IsEmpty()) << "nothing to demux";
  demux.sdp = std::string(kSdp) + "a=rtcp-mux\r\n";
  EXPECT_THAT(Translate(demux, "10.0.0.5")->warnings.front(), HasSubstr("rtcp-mux"));
}

}  // namespace
}  // namespace latchkey::control::ng
