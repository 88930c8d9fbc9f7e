#include "common/sip/contact.h"

#include <ostream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::sip {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

Contact Parse(const std::string& text) {
  absl::StatusOr<Contact> contact = Contact::Parse(text);
  EXPECT_TRUE(contact.ok()) << text << ": " << contact.status();
  return contact.ok() ? *contact : Contact::Parse("sip:invalid.test").value();
}

net::SocketAddress Addr(const std::string& text) { return net::SocketAddress::Parse(text).value(); }

const net::SocketAddress kPublic = net::SocketAddress::Parse("203.0.113.7:41234").value();

TEST(ContactTest, NameAddrWithInstanceAndExpires) {
  Contact contact = Parse(
      "\"Alice Smith\" <sip:alice@10.0.0.5:5060;ob>;expires=3600;"
      "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";reg-id=1");
  EXPECT_TRUE(contact.is_name_addr());
  EXPECT_EQ(contact.display_name(), "Alice Smith");
  EXPECT_EQ(contact.uri().text(), "sip:alice@10.0.0.5:5060;ob");
  EXPECT_EQ(contact.uri().user(), "alice");
  EXPECT_THAT(contact.uri().Param("ob"), Optional(absl::string_view("")));
  EXPECT_THAT(contact.Expires(), Optional(3600u));
  EXPECT_EQ(contact.InstanceId(), "urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF");
  EXPECT_THAT(contact.Param("reg-id"), Optional(absl::string_view("1")));
  EXPECT_THAT(contact.Param("+SIP.INSTANCE"),
              Optional(absl::string_view("\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\"")));
  EXPECT_EQ(contact.Param("ob"), std::nullopt);  // a URI parameter, not a header parameter
  EXPECT_EQ(contact.WithHostPort(kPublic),
            "\"Alice Smith\" <sip:alice@203.0.113.7:41234;ob>;expires=3600;"
            "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";reg-id=1");
}

TEST(ContactTest, BareUriKeepsParamsInTheUri) {
  Contact contact = Parse("sip:alice@10.0.0.5:5060;transport=udp;expires=120");
  EXPECT_FALSE(contact.is_name_addr());
  EXPECT_EQ(contact.display_name(), "");
  EXPECT_THAT(contact.uri().Param("transport"), Optional(absl::string_view("udp")));
  // Param() falls back to the URI for the bare form, so expires is found either way.
  EXPECT_THAT(contact.Param("transport"), Optional(absl::string_view("udp")));
  EXPECT_THAT(contact.Expires(), Optional(120u));
  EXPECT_EQ(contact.InstanceId(), "");
  EXPECT_EQ(contact.WithHostPort(kPublic), "sip:alice@203.0.113.7:41234;transport=udp;expires=120");
}

struct PhoneCase {
  const char* phone;
  const char* contact;
  const char* host;
  int port;  // -1: none written
  const char* rewritten;  // WithHostPort(203.0.113.7:41234)
};

void PrintTo(const PhoneCase& c, std::ostream* out) { *out << c.phone; }

class PhoneContactTest : public ::testing::TestWithParam<PhoneCase> {};

TEST_P(PhoneContactTest, ParsesAndRewritesOnlyHostPort) {
  const PhoneCase& c = GetParam();
  Contact contact = Parse(c.contact);
  EXPECT_EQ(contact.uri().host(), c.host) << c.phone;
  if (c.port < 0) {
    EXPECT_EQ(contact.uri().port(), std::nullopt) << c.phone;
  } else {
    EXPECT_THAT(contact.uri().port(), Optional(c.port)) << c.phone;
  }
  const std::string rewritten = contact.WithHostPort(kPublic);
  EXPECT_EQ(rewritten, c.rewritten) << c.phone;
  // The rewritten value is still one valid contact with the same parameters.
  Contact again = Parse(rewritten);
  EXPECT_EQ(again.uri().host(), "203.0.113.7");
  EXPECT_EQ(again.InstanceId(), contact.InstanceId());
  EXPECT_EQ(again.Expires(), contact.Expires());
}

INSTANTIATE_TEST_SUITE_P(
    CommonPhones, PhoneContactTest,
    ::testing::Values(
        PhoneCase{"Yealink T46U",
                  "Contact: <sip:1001@192.168.1.101:5062>;reg-id=1;"
                  "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-805EC0A1B2C3>\"",
                  "192.168.1.101", 5062,
                  "<sip:1001@203.0.113.7:41234>;reg-id=1;"
                  "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-805EC0A1B2C3>\""},
        PhoneCase{"Polycom VVX 450",
                  "Contact: <sip:1002@192.168.1.102;transport=tls>;"
                  "methods=\"INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, MESSAGE, SUBSCRIBE, NOTIFY, PRACK, UPDATE, "
                  "REFER\"",
                  "192.168.1.102", -1,
                  "<sip:1002@203.0.113.7:41234;transport=tls>;"
                  "methods=\"INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, MESSAGE, SUBSCRIBE, NOTIFY, PRACK, UPDATE, "
                  "REFER\""},
        PhoneCase{"Grandstream GXP2170",
                  "Contact: <sip:1003@192.168.1.103:5062;transport=udp>;reg-id=1;"
                  "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000B82A1B2C3>\"",
                  "192.168.1.103", 5062,
                  "<sip:1003@203.0.113.7:41234;transport=udp>;reg-id=1;"
                  "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000B82A1B2C3>\""},
        PhoneCase{"Linphone Android",
                  "Contact: <sip:linphone@10.0.2.15:44521;pn-prid=4F2A9C:remote;pn-provider=apns.dev;"
                  "pn-param=ABCD1234.org.linphone.phone.remote&voip;transport=udp>;"
                  "+sip.instance=\"<urn:uuid:4a8c1a3e-2b7d-4c6f-9e1a-0f5d3b2c1a90>\";"
                  "+org.linphone.specs=\"ephemeral,groupchat,groupchat/1.1,lime\"",
                  "10.0.2.15", 44521,
                  "<sip:linphone@203.0.113.7:41234;pn-prid=4F2A9C:remote;pn-provider=apns.dev;"
                  "pn-param=ABCD1234.org.linphone.phone.remote&voip;transport=udp>;"
                  "+sip.instance=\"<urn:uuid:4a8c1a3e-2b7d-4c6f-9e1a-0f5d3b2c1a90>\";"
                  "+org.linphone.specs=\"ephemeral,groupchat,groupchat/1.1,lime\""},
        PhoneCase{"Zoiper 5",
                  "Contact: <sip:zoiper@192.168.0.50:52341;rinstance=4d3b8c7e2a1f9d0c;transport=UDP>",
                  "192.168.0.50", 52341,
                  "<sip:zoiper@203.0.113.7:41234;rinstance=4d3b8c7e2a1f9d0c;transport=UDP>"},
        PhoneCase{"Bria 6",
                  "Contact: <sip:bria@172.20.10.3:63741;rinstance=88f1f9a4a1c3e7b2>;+sip.ice;"
                  "+sip.instance=\"<urn:uuid:a1b2c3d4-e5f6-4711-8899-aabbccddeeff>\"",
                  "172.20.10.3", 63741,
                  "<sip:bria@203.0.113.7:41234;rinstance=88f1f9a4a1c3e7b2>;+sip.ice;"
                  "+sip.instance=\"<urn:uuid:a1b2c3d4-e5f6-4711-8899-aabbccddeeff>\""},
        PhoneCase{"Cisco SPA504G", "Contact: \"Reception\" <sip:200@192.168.0.20:5060>;expires=3600",
                  "192.168.0.20", 5060, "\"Reception\" <sip:200@203.0.113.7:41234>;expires=3600"},
        PhoneCase{"Obihai OBi202", "Contact: <sip:15551234567@192.168.42.2:5080>;expires=60",
                  "192.168.42.2", 5080, "<sip:15551234567@203.0.113.7:41234>;expires=60"},
        PhoneCase{"Snom D785",
                  "Contact: <sip:snom@192.168.1.30:2048;line=abcd1234>;reg-id=1;q=1.0;"
                  "+sip.instance=\"<urn:uuid:3c1d9a2e-0000-4000-8000-000413AABBCC>\";audio;mobility=\"fixed\";"
                  "duplex=\"full\";description=\"snom785\";actor=\"principal\";events=\"dialog\";"
                  "methods=\"INVITE,ACK,CANCEL,BYE,REFER,OPTIONS,NOTIFY,SUBSCRIBE,PRACK,MESSAGE,INFO\"",
                  "192.168.1.30", 2048,
                  "<sip:snom@203.0.113.7:41234;line=abcd1234>;reg-id=1;q=1.0;"
                  "+sip.instance=\"<urn:uuid:3c1d9a2e-0000-4000-8000-000413AABBCC>\";audio;mobility=\"fixed\";"
                  "duplex=\"full\";description=\"snom785\";actor=\"principal\";events=\"dialog\";"
                  "methods=\"INVITE,ACK,CANCEL,BYE,REFER,OPTIONS,NOTIFY,SUBSCRIBE,PRACK,MESSAGE,INFO\""},
        PhoneCase{"Asterisk PJSIP outbound registration", "Contact: <sip:s@198.51.100.20:5060>",
                  "198.51.100.20", 5060, "<sip:s@203.0.113.7:41234>"},
        PhoneCase{"FreeSWITCH gateway", "Contact: <sip:gw+carrier1@198.51.100.21:5080;transport=udp;gw=carrier1>",
                  "198.51.100.21", 5080, "<sip:gw+carrier1@203.0.113.7:41234;transport=udp;gw=carrier1>"},
        PhoneCase{"Cisco 7960 (bare URI)", "Contact: sip:3000@192.168.10.11:5060;user=phone", "192.168.10.11",
                  5060, "sip:3000@203.0.113.7:41234;user=phone"},
        PhoneCase{"MicroSIP over IPv6", "Contact: <sip:101@[2001:db8:1::5]:5060;ob>", "2001:db8:1::5", 5060,
                  "<sip:101@203.0.113.7:41234;ob>"},
        PhoneCase{"TLS phone with sips", "Contact: <sips:alice@phone.example.net;transport=tls>",
                  "phone.example.net", -1, "<sips:alice@203.0.113.7:41234;transport=tls>"}));

TEST(ContactTest, HeaderNamePrefixes) {
  for (const char* text : {"Contact: <sip:a@10.0.0.1:5060>", "contact:<sip:a@10.0.0.1:5060>",
                           "CONTACT  :  <sip:a@10.0.0.1:5060>  ", "m: <sip:a@10.0.0.1:5060>",
                           "M:<sip:a@10.0.0.1:5060>", "  <sip:a@10.0.0.1:5060>\r\n", "\tm :\t<sip:a@10.0.0.1:5060>"}) {
    Contact contact = Parse(text);
    EXPECT_EQ(contact.Unprefixed(), "<sip:a@10.0.0.1:5060>") << text;
    EXPECT_EQ(contact.WithHostPort(kPublic), "<sip:a@203.0.113.7:41234>") << text;
  }
  // Bare URIs after the prefix, compact too.
  EXPECT_EQ(Parse("m: sip:a@10.0.0.1").uri().host(), "10.0.0.1");
  EXPECT_EQ(Parse("Contact:sips:a@10.0.0.1").uri().scheme(), "sips");
}

TEST(ContactTest, TokenDisplayNameIsTrimmed) {
  Contact contact = Parse("Bob  Jones <sip:bob@10.1.1.1>");
  EXPECT_EQ(contact.display_name(), "Bob  Jones");
  EXPECT_EQ(contact.WithHostPort(kPublic), "Bob  Jones <sip:bob@203.0.113.7:41234>");
  // A display name that happens to be the header name is not mistaken for one.
  EXPECT_EQ(Parse("Contact <sip:x@10.1.1.1>").display_name(), "Contact");
}

TEST(ContactTest, QuotedDisplayNameWithEscapesCommasAndBrackets) {
  Contact contact = Parse(R"("Smith, \"Ace\" <Front Desk>" <sip:desk@192.168.5.5>;expires=0)");
  EXPECT_EQ(contact.display_name(), "Smith, \"Ace\" <Front Desk>");
  EXPECT_THAT(contact.Expires(), Optional(0u));
  EXPECT_EQ(contact.uri().host(), "192.168.5.5");
  EXPECT_EQ(contact.WithHostPort(kPublic), R"("Smith, \"Ace\" <Front Desk>" <sip:desk@203.0.113.7:41234>;expires=0)");
}

TEST(ContactTest, UserWithPasswordAndSemicolonsInsideBrackets) {
  Contact contact = Parse("<sip:+15551234;phone-context=pbx.example:secret@10.9.8.7:5070;user=phone>;expires=300");
  EXPECT_EQ(contact.uri().user(), "+15551234;phone-context=pbx.example");
  EXPECT_THAT(contact.uri().password(), Optional(absl::string_view("secret")));
  EXPECT_EQ(contact.WithHostPort(kPublic),
            "<sip:+15551234;phone-context=pbx.example:secret@203.0.113.7:41234;user=phone>;expires=300");
}

TEST(ContactTest, HeaderParamsWithWhitespaceAndIpv6Values) {
  Contact contact = Parse("<sip:a@10.0.0.1> ; expires = 60 ; received=2001:db8::9 ;lr");
  EXPECT_THAT(contact.Expires(), Optional(60u));
  EXPECT_THAT(contact.Param("received"), Optional(absl::string_view("2001:db8::9")));
  EXPECT_THAT(contact.Param("LR"), Optional(absl::string_view("")));
  EXPECT_EQ(contact.WithHostPort(kPublic), "<sip:a@203.0.113.7:41234> ; expires = 60 ; received=2001:db8::9 ;lr");
}

TEST(ContactTest, HugeExpiresIsClamped) {
  EXPECT_THAT(Parse("<sip:a@10.0.0.1>;expires=99999999999999999999").Expires(), Optional(4294967295u));
}

TEST(ContactTest, RejectsWildcard) {
  for (const char* text : {"*", "Contact: *", "m:*", " * "}) {
    absl::StatusOr<Contact> contact = Contact::Parse(text);
    EXPECT_EQ(contact.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(contact.status().message(), HasSubstr("\"*\"")) << text;
  }
}

TEST(ContactTest, RejectsMultipleContacts) {
  for (const char* text : {"<sip:a@10.0.0.1>, <sip:b@10.0.0.2>", "sip:a@10.0.0.1,sip:b@10.0.0.2",
                           "\"A\" <sip:a@10.0.0.1>;expires=60, \"B\" <sip:b@10.0.0.2>",
                           "<sip:a@10.0.0.1>;methods=\"INVITE,BYE\",<sip:b@10.0.0.2>"}) {
    absl::StatusOr<Contact> contact = Contact::Parse(text);
    EXPECT_EQ(contact.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(contact.status().message(), HasSubstr("only one contact")) << text;
  }
}

TEST(ContactTest, RejectsGarbage) {
  for (const char* text : {"", "   ", "Contact:", "m:", "<>", "<sip:a@10.0.0.1", "sip:a@10.0.0.1>",
                           "\"Alice <sip:a@10.0.0.1>", "\"Alice\" sip:a@10.0.0.1", "<tel:+15551234>",
                           "<sip:a@10.0.0.1>junk", "<sip:a@10.0.0.1>;", "<sip:a@10.0.0.1>;=1",
                           "<sip:a@10.0.0.1>;expires=soon", "<sip:a@10.0.0.1>;expires=", "<sip:a@10.0.0.1>;x=\"open",
                           "<sip:a@10.0.0.1> <sip:b@10.0.0.2>", "A\x01 <sip:a@10.0.0.1>", "sip:a@10.0.0.1 ;expires=1",
                           "<sip:a b@10.0.0.1>", "<<sip:a@10.0.0.1>>", "sip:a@10.0.0.1;expires=-1"}) {
    absl::StatusOr<Contact> contact = Contact::Parse(text);
    EXPECT_FALSE(contact.ok()) << "accepted \"" << text << "\"";
    EXPECT_EQ(contact.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
}

TEST(ContactTest, WithHostPortIpv6Address) {
  Contact contact = Parse("<sip:alice@192.168.1.5:5060;transport=udp>;expires=3600");
  EXPECT_EQ(contact.WithHostPort(Addr("[2001:db8::99]:5062")),
            "<sip:alice@[2001:db8::99]:5062;transport=udp>;expires=3600");
}

}  // namespace
}  // namespace latchkey::sip
