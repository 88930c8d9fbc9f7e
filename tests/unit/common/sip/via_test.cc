#include "common/sip/via.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::sip {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

Via Parse(const std::string& text) {
  absl::StatusOr<Via> via = Via::Parse(text);
  EXPECT_TRUE(via.ok()) << text << ": " << via.status();
  return via.ok() ? *via : Via::Parse("invalid.test").value();
}

TEST(ViaTest, ParsesFullValue) {
  Via via = Parse("SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK776asdhds;rport;received=1.2.3.4");
  EXPECT_EQ(via.transport(), "UDP");
  EXPECT_EQ(via.host(), "192.168.1.20");
  EXPECT_TRUE(via.host_is_ip());
  EXPECT_THAT(via.ip(), Optional(net::IpAddress::V4(192, 168, 1, 20)));
  EXPECT_THAT(via.port(), Optional(5062));
  EXPECT_EQ(via.EffectivePort(), 5062);
  EXPECT_THAT(via.Param("branch"), Optional(absl::string_view("z9hG4bK776asdhds")));
  EXPECT_THAT(via.Param("RECEIVED"), Optional(absl::string_view("1.2.3.4")));
  EXPECT_THAT(via.Param("rport"), Optional(absl::string_view("")));
  EXPECT_TRUE(via.has_rport());
  EXPECT_EQ(via.Param("maddr"), std::nullopt);
}

TEST(ViaTest, ProtocolIsCaseInsensitiveWithSpacesAroundSlashes) {
  Via via = Parse("sip / 2.0 / tls   pbx.example.com ;branch=z9hG4bKabc");
  EXPECT_EQ(via.transport(), "TLS");
  EXPECT_EQ(via.host(), "pbx.example.com");
  EXPECT_FALSE(via.host_is_ip());
  EXPECT_EQ(via.ip(), std::nullopt);
  EXPECT_EQ(via.port(), std::nullopt);
  EXPECT_EQ(via.EffectivePort(), 5061);
  EXPECT_FALSE(via.has_rport());
}

TEST(ViaTest, EffectivePortDefaults) {
  EXPECT_EQ(Parse("SIP/2.0/UDP 203.0.113.7").EffectivePort(), 5060);
  EXPECT_EQ(Parse("SIP/2.0/TCP 203.0.113.7").EffectivePort(), 5060);
  EXPECT_EQ(Parse("SIP/2.0/TLS 203.0.113.7").EffectivePort(), 5061);
  EXPECT_EQ(Parse("SIP/2.0/TLS 203.0.113.7:5063").EffectivePort(), 5063);
  EXPECT_EQ(Parse("203.0.113.7").EffectivePort(), 5060);
}

TEST(ViaTest, HeaderNamePrefixes) {
  for (const char* text : {"Via: SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bK1", "via:SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bK1",
                           "v: SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bK1", "V :SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bK1",
                           "  VIA  :  SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bK1\r\n"}) {
    Via via = Parse(text);
    EXPECT_EQ(via.transport(), "UDP") << text;
    EXPECT_EQ(via.host(), "10.0.0.8") << text;
    EXPECT_THAT(via.port(), Optional(5060)) << text;
    EXPECT_EQ(via.text(), "SIP/2.0/UDP 10.0.0.8:5060;branch=z9hG4bK1") << text;
  }
}

TEST(ViaTest, ListUsesTheTopValue) {
  Via via = Parse(
      "SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bKtop;rport, SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKsecond");
  EXPECT_EQ(via.host(), "192.168.1.20");
  EXPECT_THAT(via.Param("branch"), Optional(absl::string_view("z9hG4bKtop")));
  EXPECT_TRUE(via.has_rport());
  // A comma inside a quoted parameter is not a separator.
  Via quoted = Parse("SIP/2.0/UDP 10.0.0.1;x=\"a,b\";branch=z9hG4bK2,SIP/2.0/UDP 10.0.0.2");
  EXPECT_THAT(quoted.Param("x"), Optional(absl::string_view("\"a,b\"")));
  EXPECT_THAT(quoted.Param("branch"), Optional(absl::string_view("z9hG4bK2")));
}

TEST(ViaTest, Ipv6SentBy) {
  Via via = Parse("SIP/2.0/UDP [2001:db8::20]:5062;branch=z9hG4bKv6;received=2001:db8::99;rport=40000");
  EXPECT_EQ(via.host(), "2001:db8::20");
  EXPECT_TRUE(via.ip()->is_v6());
  EXPECT_THAT(via.port(), Optional(5062));
  EXPECT_THAT(via.Param("received"), Optional(absl::string_view("2001:db8::99")));
  EXPECT_THAT(via.Param("rport"), Optional(absl::string_view("40000")));
}

TEST(ViaTest, SentByOnly) {
  Via v4 = Parse("192.168.1.20:5062");
  EXPECT_EQ(v4.transport(), "");
  EXPECT_EQ(v4.host(), "192.168.1.20");
  EXPECT_THAT(v4.port(), Optional(5062));
  Via v6 = Parse("[2001:db8::1]:5070");
  EXPECT_EQ(v6.host(), "2001:db8::1");
  EXPECT_THAT(v6.port(), Optional(5070));
  Via name = Parse("phone.lan");
  EXPECT_EQ(name.host(), "phone.lan");
  EXPECT_FALSE(name.host_is_ip());
  EXPECT_EQ(name.port(), std::nullopt);
  Via sip_name = Parse("sip.example.com:5080");  // starts like "SIP" but is a host name
  EXPECT_EQ(sip_name.host(), "sip.example.com");
  EXPECT_THAT(sip_name.port(), Optional(5080));
}

TEST(ViaTest, RealWorldValues) {
  // Yealink, Grandstream with rport, Asterisk PJSIP, FreeSWITCH over TCP, Linphone, WebRTC over WSS.
  Via yealink = Parse("SIP/2.0/UDP 192.168.1.101:5062;branch=z9hG4bK1783659127");
  EXPECT_THAT(yealink.port(), Optional(5062));
  Via grandstream = Parse("SIP/2.0/UDP 192.168.1.103:5062;branch=z9hG4bK1509385532;rport");
  EXPECT_TRUE(grandstream.has_rport());
  Via pjsip = Parse("SIP/2.0/UDP 198.51.100.20:5060;rport;branch=z9hG4bKPj4f0b3b0e-4d6a-4c2e-9a7e-2f1c3d4e5f60");
  EXPECT_EQ(pjsip.Param("branch")->size(), 45u);
  Via freeswitch = Parse("SIP/2.0/TCP 198.51.100.21:5080;branch=z9hG4bKH3mSc7gX6Nv1m;alias");
  EXPECT_EQ(freeswitch.transport(), "TCP");
  Via linphone = Parse("SIP/2.0/UDP 10.0.2.15:44521;branch=z9hG4bK.sI0j~iAVd;rport");
  EXPECT_THAT(linphone.Param("branch"), Optional(absl::string_view("z9hG4bK.sI0j~iAVd")));
  Via webrtc = Parse("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bK5308941");
  EXPECT_EQ(webrtc.transport(), "WSS");
  EXPECT_EQ(webrtc.host(), "df7jal23ls0d.invalid");
}

TEST(ViaTest, RejectsGarbage) {
  for (const char* text : {"", "  ", "Via:", "v:", "SIP/2.0/UDP", "SIP/2.0/UDP ", "SIP/2.0/ 10.0.0.1",
                           "SIP/2.0 10.0.0.1", "SIP//UDP 10.0.0.1", "HTTP/1.1/TCP 10.0.0.1", "SIP/2.0/UDP10.0.0.1",
                           "SIP/2.0/UDP 10.0.0.1:", "SIP/2.0/UDP 10.0.0.1:0", "SIP/2.0/UDP 10.0.0.1:70000",
                           "SIP/2.0/UDP 10.0.0.1;", "SIP/2.0/UDP 10.0.0.1;branch=", "SIP/2.0/UDP 10.0.0.1 junk",
                           "SIP/2.0/UDP [2001:db8::1", "SIP/2.0/UDP 300.1.1.1", "SIP/2.0/UDP 10.0.0.1;x=\"open",
                           "10.0.0.1:5060:5060", "[10.0.0.1]", "/", ", SIP/2.0/UDP 10.0.0.1", "SIP/2.0/UDP <host>"}) {
    absl::StatusOr<Via> via = Via::Parse(text);
    EXPECT_FALSE(via.ok()) << "accepted \"" << text << "\"";
    EXPECT_EQ(via.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  EXPECT_THAT(Via::Parse("HTTP/1.1/TCP 10.0.0.1").status().message(), HasSubstr("SIP"));
}

}  // namespace
}  // namespace latchkey::sip
