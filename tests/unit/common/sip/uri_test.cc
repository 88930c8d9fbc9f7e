#include "common/sip/uri.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::sip {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

SipUri Uri(const std::string& text) {
  absl::StatusOr<SipUri> uri = SipUri::Parse(text);
  EXPECT_TRUE(uri.ok()) << text << ": " << uri.status();
  return uri.ok() ? *uri : SipUri::Parse("sip:invalid.test").value();
}

net::SocketAddress Addr(const std::string& text) { return net::SocketAddress::Parse(text).value(); }

TEST(SipUriTest, ParsesTypicalPhoneContact) {
  SipUri uri = Uri("sip:alice@10.0.0.5:5062;transport=udp;ob");
  EXPECT_EQ(uri.scheme(), "sip");
  EXPECT_FALSE(uri.is_sips());
  EXPECT_EQ(uri.user(), "alice");
  EXPECT_EQ(uri.password(), std::nullopt);
  EXPECT_EQ(uri.host(), "10.0.0.5");
  EXPECT_TRUE(uri.host_is_ip());
  EXPECT_THAT(uri.ip(), Optional(net::IpAddress::V4(10, 0, 0, 5)));
  EXPECT_THAT(uri.port(), Optional(5062));
  EXPECT_EQ(uri.EffectivePort(), 5062);
  EXPECT_THAT(uri.Param("transport"), Optional(absl::string_view("udp")));
  EXPECT_THAT(uri.Param("ob"), Optional(absl::string_view("")));
  EXPECT_EQ(uri.Param("lr"), std::nullopt);
  EXPECT_EQ(uri.transport(), "udp");
  EXPECT_EQ(uri.headers(), "");
  EXPECT_EQ(uri.text(), "sip:alice@10.0.0.5:5062;transport=udp;ob");
}

TEST(SipUriTest, SchemeAndParamNamesAreCaseInsensitive) {
  SipUri uri = Uri("SIP:bob@PBX.Example.COM;Transport=TCP;LR");
  EXPECT_EQ(uri.scheme(), "sip");
  EXPECT_EQ(uri.host(), "PBX.Example.COM");
  EXPECT_FALSE(uri.host_is_ip());
  EXPECT_EQ(uri.ip(), std::nullopt);
  EXPECT_THAT(uri.Param("transport"), Optional(absl::string_view("TCP")));
  EXPECT_THAT(uri.Param("lr"), Optional(absl::string_view("")));
  EXPECT_EQ(uri.transport(), "TCP");
}

TEST(SipUriTest, EffectivePortDefaults) {
  EXPECT_EQ(Uri("sip:alice@203.0.113.7").EffectivePort(), 5060);
  EXPECT_EQ(Uri("sips:alice@203.0.113.7").EffectivePort(), 5061);
  EXPECT_EQ(Uri("Sips:alice@203.0.113.7").scheme(), "sips");
  EXPECT_EQ(Uri("sip:alice@203.0.113.7;transport=TLS").EffectivePort(), 5061);
  EXPECT_EQ(Uri("sip:alice@203.0.113.7;transport=tcp").EffectivePort(), 5060);
  EXPECT_EQ(Uri("sips:alice@203.0.113.7:443").EffectivePort(), 443);
  EXPECT_EQ(Uri("sip:alice@203.0.113.7").port(), std::nullopt);
}

TEST(SipUriTest, BracketedIpv6Host) {
  SipUri uri = Uri("sip:carol@[2001:db8::10]:5070;transport=udp");
  EXPECT_EQ(uri.host(), "2001:db8::10");
  EXPECT_TRUE(uri.host_is_ip());
  EXPECT_TRUE(uri.ip()->is_v6());
  EXPECT_THAT(uri.port(), Optional(5070));
  EXPECT_EQ(Uri("sip:[fe80::1]").host(), "fe80::1");
}

TEST(SipUriTest, UserWithPasswordAndSemicolons) {
  SipUri with_password = Uri("sip:alice:s3cr%40t@192.168.1.20:5060");
  EXPECT_EQ(with_password.user(), "alice");
  EXPECT_THAT(with_password.password(), Optional(absl::string_view("s3cr%40t")));
  EXPECT_EQ(with_password.host(), "192.168.1.20");

  SipUri phone = Uri("sip:+15551234567;phone-context=example.com@gw.example.com;user=phone");
  EXPECT_EQ(phone.user(), "+15551234567;phone-context=example.com");
  EXPECT_EQ(phone.host(), "gw.example.com");
  EXPECT_THAT(phone.Param("user"), Optional(absl::string_view("phone")));
  EXPECT_EQ(phone.Param("phone-context"), std::nullopt);  // part of the user, not a URI parameter
}

TEST(SipUriTest, WithoutUserinfo) {
  SipUri uri = Uri("sip:pbx.example.com:5080;lr");
  EXPECT_EQ(uri.user(), "");
  EXPECT_EQ(uri.host(), "pbx.example.com");
  EXPECT_THAT(uri.port(), Optional(5080));
}

TEST(SipUriTest, Headers) {
  SipUri uri = Uri("sip:bob@198.51.100.4;transport=udp?Subject=hello&Priority=urgent");
  EXPECT_EQ(uri.headers(), "Subject=hello&Priority=urgent");
  EXPECT_THAT(uri.Param("transport"), Optional(absl::string_view("udp")));
}

TEST(SipUriTest, WithHostPortReplacesOnlyHostPort) {
  SipUri uri = Uri("sip:alice:pw@10.0.0.5:5062;transport=udp;ob?X=y");
  EXPECT_EQ(uri.WithHostPort(Addr("203.0.113.7:41234")), "sip:alice:pw@203.0.113.7:41234;transport=udp;ob?X=y");
  EXPECT_EQ(uri.WithHostPort(Addr("[2001:db8::7]:5060")), "sip:alice:pw@[2001:db8::7]:5060;transport=udp;ob?X=y");

  // No port written: one is added.
  EXPECT_EQ(Uri("sips:bob@phone.lan;rinstance=abc").WithHostPort(Addr("198.51.100.1:5061")),
            "sips:bob@198.51.100.1:5061;rinstance=abc");
  // IPv6 original, no userinfo.
  EXPECT_EQ(Uri("sip:[fd00::5]:5060").WithHostPort(Addr("203.0.113.9:6000")), "sip:203.0.113.9:6000");
  // Odd-but-valid casing and escapes survive.
  EXPECT_EQ(Uri("SIP:%61lice@192.168.0.2;X-Custom=A%20B").WithHostPort(Addr("203.0.113.7:1")),
            "SIP:%61lice@203.0.113.7:1;X-Custom=A%20B");
}

TEST(SipUriTest, WithHostPortResultParsesBack) {
  SipUri uri = Uri("sip:+1555;phone-context=x@host.example:5060;user=phone");
  SipUri rewritten = Uri(uri.WithHostPort(Addr("[2001:db8::1]:7000")));
  EXPECT_EQ(rewritten.user(), "+1555;phone-context=x");
  EXPECT_EQ(rewritten.host(), "2001:db8::1");
  EXPECT_THAT(rewritten.port(), Optional(7000));
  EXPECT_THAT(rewritten.Param("user"), Optional(absl::string_view("phone")));
}

TEST(SipUriTest, RejectsGarbage) {
  for (const char* text : {"", "sip", "sip:", "tel:+15551234567", "http://example.com", "sipx:alice@host",
                           "alice@host", "sip:@host", "sip:alice@", "sip:alice@:5060", "sip:alice@host:",
                           "sip:alice@host:0", "sip:alice@host:65536", "sip:alice@host:50x0", "sip:alice@[::1",
                           "sip:alice@[nothex]", "sip:alice@[1.2.3.4]", "sip:alice@300.1.1.1", "sip:alice@1.2.3",
                           "sip:alice@host;", "sip:alice@host;=x", "sip:alice@host name", "sip:alice@host>",
                           "sip:al ice@host", "sip:alice@host;x=\"q\"", "sip:alice@ho$t", "sip:alice@host\r\n",
                           "sip:alice@host?a=<b>", "sip:<alice>@host"}) {
    absl::StatusOr<SipUri> uri = SipUri::Parse(text);
    EXPECT_FALSE(uri.ok()) << "accepted \"" << text << "\"";
    EXPECT_EQ(uri.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  EXPECT_FALSE(SipUri::Parse(absl::string_view("sip:a@b\0c", 9)).ok());
  EXPECT_THAT(SipUri::Parse("tel:+1555").status().message(), HasSubstr("scheme"));
  EXPECT_THAT(SipUri::Parse("sip:alice@host:99999").status().message(), HasSubstr("port"));
}

TEST(SipUriTest, CopiesStayValid) {
  std::optional<SipUri> copy;
  {
    SipUri original = Uri("sip:dave@192.0.2.8:5060;transport=udp");
    copy = original;
  }
  EXPECT_EQ(copy->user(), "dave");
  EXPECT_EQ(copy->host(), "192.0.2.8");
  EXPECT_EQ(copy->transport(), "udp");
}

}  // namespace
}  // namespace latchkey::sip
