#include "common/sip/options.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/sip/uri.h"
#include "common/sip/via.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/sip_phone.h"

namespace latchkey::sip {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

OptionsRequest Keepalive() {
  OptionsRequest request;
  request.request_uri = "sip:alice@192.168.1.20:5060;transport=udp";
  request.to_uri = "sip:alice@192.168.1.20:5060;transport=udp";
  request.from_uri = "sip:keepalive@203.0.113.1";
  request.from_tag = "8f3a1c";
  request.call_id = "ka-7b1e0c2d@203.0.113.1";
  request.branch = "z9hG4bK-ka-000042";
  request.via_host = "203.0.113.1";
  request.via_port = 5060;
  request.cseq = 42;
  request.user_agent = "latchkey";
  return request;
}

std::string Write(const OptionsRequest& request, size_t capacity = 1500) {
  std::string out(capacity, '\xAA');
  const size_t n = WriteOptions(request, out.data(), out.size());
  out.resize(n);
  return out;
}

constexpr absl::string_view kExpected =
    "OPTIONS sip:alice@192.168.1.20:5060;transport=udp SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK-ka-000042;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:keepalive@203.0.113.1>;tag=8f3a1c\r\n"
    "To: <sip:alice@192.168.1.20:5060;transport=udp>\r\n"
    "Call-ID: ka-7b1e0c2d@203.0.113.1\r\n"
    "CSeq: 42 OPTIONS\r\n"
    "User-Agent: latchkey\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

// The header lines of a message; it must end with an empty line.
std::vector<std::string> Lines(absl::string_view message) {
  EXPECT_TRUE(absl::EndsWith(message, "\r\n\r\n")) << message;
  return testing::SipLines(message);
}

// ---- WriteOptions ----

TEST(WriteOptionsTest, ExactText) { EXPECT_EQ(Write(Keepalive()), kExpected); }

TEST(WriteOptionsTest, EachHeaderReadsBack) {
  const std::string request = Write(Keepalive());
  const std::vector<std::string> lines = Lines(request);
  ASSERT_EQ(lines.size(), 9u) << request;

  ASSERT_TRUE(absl::StartsWith(lines[0], "OPTIONS ")) << lines[0];
  ASSERT_TRUE(absl::EndsWith(lines[0], " SIP/2.0")) << lines[0];
  absl::StatusOr<SipUri> uri = SipUri::Parse(absl::string_view(lines[0]).substr(8, lines[0].size() - 16));
  ASSERT_TRUE(uri.ok()) << uri.status();
  EXPECT_EQ(uri->user(), "alice");
  EXPECT_EQ(uri->host(), "192.168.1.20");
  EXPECT_EQ(uri->transport(), "udp");

  absl::StatusOr<Via> via = Via::Parse(lines[1]);
  ASSERT_TRUE(via.ok()) << via.status();
  EXPECT_EQ(via->transport(), "UDP");
  EXPECT_EQ(via->host(), "203.0.113.1");
  EXPECT_THAT(via->port(), Optional(5060));
  EXPECT_THAT(via->Param("branch"), Optional(absl::string_view("z9hG4bK-ka-000042")));
  EXPECT_TRUE(via->has_rport());

  EXPECT_EQ(lines[2], "Max-Forwards: 70");
  EXPECT_EQ(lines[3], "From: <sip:keepalive@203.0.113.1>;tag=8f3a1c");
  EXPECT_EQ(lines[4], "To: <sip:alice@192.168.1.20:5060;transport=udp>");
  EXPECT_EQ(lines[5], "Call-ID: ka-7b1e0c2d@203.0.113.1");
  EXPECT_EQ(lines[6], "CSeq: 42 OPTIONS");
  EXPECT_EQ(lines[7], "User-Agent: latchkey");
  EXPECT_EQ(lines[8], "Content-Length: 0");

  // And the answer a phone builds from it matches the transaction.
  const std::string answer = testing::AnswerLikeAPhone(request, "SIP/2.0 200 OK");  // the summary views into it
  absl::StatusOr<ResponseSummary> summary = ParseResponse(answer);
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->status_code, 200);
  EXPECT_EQ(summary->branch, "z9hG4bK-ka-000042");
  EXPECT_EQ(summary->call_id, "ka-7b1e0c2d@203.0.113.1");
  EXPECT_EQ(summary->cseq, 42u);
  EXPECT_EQ(summary->cseq_method, "OPTIONS");
}

TEST(WriteOptionsTest, FitsExactlyAndNotOneByteLess) {
  const OptionsRequest request = Keepalive();
  std::string out(kExpected.size(), '\0');
  EXPECT_EQ(WriteOptions(request, out.data(), out.size()), kExpected.size());
  EXPECT_EQ(out, kExpected);
  for (size_t capacity : {kExpected.size() - 1, kExpected.size() - 4, size_t{100}, size_t{1}, size_t{0}}) {
    std::string small(capacity, '\0');
    EXPECT_EQ(WriteOptions(request, small.data(), small.size()), 0u) << capacity;
  }
  EXPECT_EQ(WriteOptions(request, nullptr, 0), 0u);
}

TEST(WriteOptionsTest, NeverWritesPastCapacity) {
  const OptionsRequest request = Keepalive();
  for (size_t capacity = 0; capacity <= kExpected.size(); ++capacity) {
    std::string buffer(kExpected.size() + 8, '#');
    WriteOptions(request, buffer.data(), capacity);
    EXPECT_EQ(buffer.substr(capacity), std::string(kExpected.size() + 8 - capacity, '#')) << capacity;
  }
}

TEST(WriteOptionsTest, Ipv6ViaHost) {
  OptionsRequest request = Keepalive();
  request.request_uri = "sip:bob@[2001:db8::20]:5062";
  request.to_uri = request.request_uri;
  request.via_port = 5080;
  request.transport = "TCP";
  for (absl::string_view host : {"[2001:db8::1]", "2001:db8::1"}) {
    request.via_host = host;
    const std::string written = Write(request);
    const std::vector<std::string> lines = Lines(written);
    ASSERT_GE(lines.size(), 2u) << written;
    EXPECT_EQ(lines[0], "OPTIONS sip:bob@[2001:db8::20]:5062 SIP/2.0");
    EXPECT_EQ(lines[1], "Via: SIP/2.0/TCP [2001:db8::1]:5080;branch=z9hG4bK-ka-000042;rport") << host;
    absl::StatusOr<Via> via = Via::Parse(lines[1]);
    ASSERT_TRUE(via.ok()) << via.status();
    EXPECT_THAT(via->ip(), Optional(*net::IpAddress::Parse("2001:db8::1")));
    EXPECT_THAT(via->port(), Optional(5080));
  }
}

TEST(WriteOptionsTest, HostNameAndLargeCSeqAndNoUserAgent) {
  OptionsRequest request = Keepalive();
  request.via_host = "edge-1.pbx.example.com";
  request.cseq = 4294967295u;
  request.user_agent = "";
  const std::string written = Write(request);
  EXPECT_THAT(written, HasSubstr("\r\nVia: SIP/2.0/UDP edge-1.pbx.example.com:5060;branch="));
  EXPECT_THAT(written, HasSubstr("\r\nCSeq: 4294967295 OPTIONS\r\n"));
  EXPECT_THAT(written, ::testing::Not(HasSubstr("User-Agent")));
  EXPECT_EQ(Lines(written).size(), 8u);

  request.cseq = 0;
  EXPECT_THAT(Write(request), HasSubstr("\r\nCSeq: 0 OPTIONS\r\n"));
}

TEST(WriteOptionsTest, RefusesFieldsItCannotWriteCorrectly) {
  auto refused = [](void (*change)(OptionsRequest&)) {
    OptionsRequest request = Keepalive();
    change(request);
    return Write(request).empty();
  };
  EXPECT_FALSE(refused([](OptionsRequest&) {}));
  EXPECT_TRUE(refused([](OptionsRequest& r) { r.branch = "ka-000042"; }));
  EXPECT_TRUE(refused([](OptionsRequest& r) { r.branch = "Z9HG4BK-ka"; }));
  EXPECT_TRUE(refused([](OptionsRequest& r) { r.call_id = "abc\r\nContact: <sip:evil@198.51.100.66>"; }));
  EXPECT_TRUE(refused([](OptionsRequest& r) { r.request_uri = "sip:alice@192.168.1.20\n"; }));
  EXPECT_TRUE(refused([](OptionsRequest& r) { r.user_agent = absl::string_view("x\0y", 3); }));
  EXPECT_TRUE(refused([](OptionsRequest& r) { r.from_tag = ""; }));
  EXPECT_TRUE(refused([](OptionsRequest& r) { r.call_id = ""; }));
  EXPECT_TRUE(refused([](OptionsRequest& r) { r.request_uri = ""; }));
  EXPECT_TRUE(refused([](OptionsRequest& r) { r.to_uri = ""; }));
  EXPECT_TRUE(refused([](OptionsRequest& r) { r.from_uri = ""; }));
  EXPECT_TRUE(refused([](OptionsRequest& r) { r.via_host = ""; }));
  EXPECT_TRUE(refused([](OptionsRequest& r) { r.transport = ""; }));
  EXPECT_TRUE(refused([](OptionsRequest& r) { r.via_port = 0; }));
}

// ---- ParseResponse ----

ResponseSummary Parse(absl::string_view text) {
  absl::StatusOr<ResponseSummary> summary = ParseResponse(text);
  EXPECT_TRUE(summary.ok()) << summary.status() << "\n" << text;
  return summary.ok() ? *summary : ResponseSummary{};
}

void ExpectError(absl::string_view text, absl::string_view message_part) {
  absl::StatusOr<ResponseSummary> summary = ParseResponse(text);
  ASSERT_FALSE(summary.ok()) << text;
  EXPECT_EQ(summary.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(summary.status().message(), HasSubstr(message_part)) << text;
}

// A Yealink answering our keepalive: rport filled in, received added, a To tag, an Allow list.
constexpr absl::string_view kYealink200 =
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bK-ka-000042;rport=5060;received=203.0.113.1\r\n"
    "From: <sip:keepalive@203.0.113.1>;tag=8f3a1c\r\n"
    "To: <sip:alice@192.168.1.20:5060;transport=udp>;tag=1840135437\r\n"
    "Call-ID: ka-7b1e0c2d@203.0.113.1\r\n"
    "CSeq: 42 OPTIONS\r\n"
    "Contact: <sip:alice@192.168.1.20:5060>\r\n"
    "Allow: INVITE, INFO, PRACK, ACK, BYE, CANCEL, OPTIONS, NOTIFY, REGISTER, SUBSCRIBE, REFER, PUBLISH, UPDATE, MESSAGE\r\n"
    "Supported: replaces\r\n"
    "User-Agent: Yealink SIP-T46S 66.86.0.15\r\n"
    "Accept-Language: en\r\n"
    "Content-Length: 0\r\n"
    "\r\n";

TEST(ParseResponseTest, Yealink200Ok) {
  ResponseSummary summary = Parse(kYealink200);
  EXPECT_EQ(summary.status_code, 200);
  EXPECT_EQ(summary.branch, "z9hG4bK-ka-000042");
  EXPECT_EQ(summary.call_id, "ka-7b1e0c2d@203.0.113.1");
  EXPECT_EQ(summary.cseq, 42u);
  EXPECT_EQ(summary.cseq_method, "OPTIONS");
  // Views into the input, not copies.
  EXPECT_GE(summary.branch.data(), kYealink200.data());
  EXPECT_LE(summary.branch.data() + summary.branch.size(), kYealink200.data() + kYealink200.size());
  EXPECT_GE(summary.call_id.data(), kYealink200.data());
  EXPECT_LE(summary.cseq_method.data() + summary.cseq_method.size(), kYealink200.data() + kYealink200.size());
}

TEST(ParseResponseTest, ErrorStatusesAndReasonPhrases) {
  const std::string rest =
      "\r\nVia: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKx;rport\r\nCall-ID: c1\r\nCSeq: 7 OPTIONS\r\n\r\n";
  EXPECT_EQ(Parse(absl::StrCat("SIP/2.0 404 Not Found", rest)).status_code, 404);
  EXPECT_EQ(Parse(absl::StrCat("SIP/2.0 483 Too Many Hops", rest)).status_code, 483);
  EXPECT_EQ(Parse(absl::StrCat("SIP/2.0 100 Trying", rest)).status_code, 100);
  EXPECT_EQ(Parse(absl::StrCat("SIP/2.0 699 Whatever", rest)).status_code, 699);
  EXPECT_EQ(Parse(absl::StrCat("SIP/2.0 503 ", rest)).status_code, 503);
  EXPECT_EQ(Parse(absl::StrCat("SIP/2.0 200", rest)).status_code, 200);  // reason phrase left out
  EXPECT_EQ(Parse(absl::StrCat("SIP/2.0 200 Très bien", rest)).status_code, 200);

  ExpectError(absl::StrCat("SIP/2.0 099 Low", rest), "status code must be 100-699");
  ExpectError(absl::StrCat("SIP/2.0 700 High", rest), "status code must be 100-699");
  ExpectError(absl::StrCat("SIP/2.0 000 Zero", rest), "status code must be 100-699");
  ExpectError(absl::StrCat("SIP/2.0 20 OK", rest), "status code must be three digits");
  ExpectError(absl::StrCat("SIP/2.0 2000 OK", rest), "status code must be three digits");
  ExpectError(absl::StrCat("SIP/2.0 2x0 OK", rest), "status code must be three digits");
  ExpectError(absl::StrCat("SIP/2.0  200 OK", rest), "status code must be three digits");
  ExpectError(absl::StrCat("SIP/2.0 ", rest), "status code must be three digits");
}

TEST(ParseResponseTest, CompactForms) {
  // Linphone-like compact headers, a received IPv6 and no spaces after ':'.
  ResponseSummary summary = Parse(
      "SIP/2.0 200 OK\r\n"
      "v:SIP/2.0/UDP [2001:db8::1]:5060;received=2001:db8::1;rport=5060;branch=z9hG4bK.Ab3~x\r\n"
      "f:<sip:keepalive@[2001:db8::1]>;tag=1\r\n"
      "t:<sip:bob@[2001:db8::20]:5062>;tag=2\r\n"
      "i:7a6d@2001:db8::1\r\n"
      "CSeq:9 OPTIONS\r\n"
      "l:0\r\n"
      "\r\n");
  EXPECT_EQ(summary.branch, "z9hG4bK.Ab3~x");
  EXPECT_EQ(summary.call_id, "7a6d@2001:db8::1");
  EXPECT_EQ(summary.cseq, 9u);
}

TEST(ParseResponseTest, NamesAnyCaseWhitespaceAroundColonAndFolding) {
  ResponseSummary summary = Parse(
      "sip/2.0 200 ok\r\n"
      "VIA \t:  SIP / 2.0 / udp 203.0.113.1:5060\r\n"
      "  ;BRANCH=z9hG4bKfold\r\n"
      "\t;rport\r\n"
      "call-id   :   abc@host  \r\n"
      "V: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKsecond\r\n"
      "cseq:\r\n 11\r\n   Options\r\n"
      "\r\n");
  EXPECT_EQ(summary.branch, "z9hG4bKfold");
  EXPECT_EQ(summary.call_id, "abc@host");
  EXPECT_EQ(summary.cseq, 11u);
  EXPECT_EQ(summary.cseq_method, "Options");
}

TEST(ParseResponseTest, TopViaWins) {
  // Several Via headers: the first one is ours.
  EXPECT_EQ(Parse("SIP/2.0 200 OK\r\n"
                  "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKtop;rport=5060\r\n"
                  "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKsecond\r\n"
                  "v: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKthird\r\n"
                  "Call-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n")
                .branch,
            "z9hG4bKtop");
  // One header with comma-separated values, a quoted comma in a parameter of the first.
  EXPECT_EQ(Parse("SIP/2.0 200 OK\r\n"
                  "Via: SIP/2.0/UDP 203.0.113.1;x=\"a,b\";branch=z9hG4bKfirst , SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKnext\r\n"
                  "Call-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n")
                .branch,
            "z9hG4bKfirst");
  // A later malformed Via does not matter: only the top one is read.
  EXPECT_EQ(Parse("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa, garbage\r\nVia: !!!\r\n"
                  "Call-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n")
                .branch,
            "z9hG4bKa");
  // Call-ID and CSeq before Via, other headers in between, a body after the empty line.
  EXPECT_EQ(Parse("SIP/2.0 200 OK\r\nCSeq: 3 OPTIONS\r\nCall-ID: y\r\nX-Foo: bar\r\n"
                  "Via: SIP/2.0/TLS pbx.example.com;branch=z9hG4bKlate\r\nContent-Length: 4\r\n\r\nbody")
                .branch,
            "z9hG4bKlate");
}

TEST(ParseResponseTest, BareLineFeeds) {
  ResponseSummary summary =
      Parse("SIP/2.0 200 OK\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKlf\nCall-ID: lf\nCSeq: 5 OPTIONS\n\n");
  EXPECT_EQ(summary.branch, "z9hG4bKlf");
  EXPECT_EQ(summary.call_id, "lf");
}

TEST(ParseResponseTest, MissingHeaders) {
  const std::string via = "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKx\r\n";
  const std::string call_id = "Call-ID: c1\r\n";
  const std::string cseq = "CSeq: 7 OPTIONS\r\n";
  ExpectError(absl::StrCat("SIP/2.0 200 OK\r\n", call_id, cseq, "\r\n"), "no Via header");
  ExpectError(absl::StrCat("SIP/2.0 200 OK\r\n", via, cseq, "\r\n"), "no Call-ID header");
  ExpectError(absl::StrCat("SIP/2.0 200 OK\r\n", via, call_id, "\r\n"), "no CSeq header");
  ExpectError("SIP/2.0 200 OK\r\n\r\n", "no Via header");
  // A header that only looks like one.
  ExpectError(absl::StrCat("SIP/2.0 200 OK\r\n", "X-Via: SIP/2.0/UDP h;branch=z9hG4bKx\r\n", call_id, cseq, "\r\n"),
              "no Via header");
}

TEST(ParseResponseTest, MalformedHeaders) {
  const std::string head = "SIP/2.0 200 OK\r\n";
  const std::string via = "Via: SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKx\r\n";
  const std::string call_id = "Call-ID: c1\r\n";
  const std::string cseq = "CSeq: 7 OPTIONS\r\n";
  auto with_via = [&](absl::string_view line) { return absl::StrCat(head, line, "\r\n", call_id, cseq, "\r\n"); };
  ExpectError(with_via("Via: SIP/2.0/UDP 203.0.113.1:5060;rport"), "no branch parameter");
  ExpectError(with_via("Via: SIP/2.0/UDP 203.0.113.1:5060;branch"), "branch parameter has no value");
  ExpectError(with_via("Via: SIP/2.0/UDP 203.0.113.1:5060;branch="), "expected a parameter value");
  ExpectError(with_via("Via: SIP/3.0/UDP 203.0.113.1;branch=z9hG4bKx"), "version must be 2.0");
  ExpectError(with_via("Via: HTTP/2.0/UDP 203.0.113.1;branch=z9hG4bKx"), "must start with SIP/");
  ExpectError(with_via("Via: SIP/2.0/ 203.0.113.1;branch=z9hG4bKx"), "Via");
  ExpectError(with_via("Via: SIP/2.0/UDP;branch=z9hG4bKx"), "whitespace before the sent-by");
  ExpectError(with_via("Via: SIP/2.0/UDP 203.0.113.1:0;branch=z9hG4bKx"), "Via");
  ExpectError(with_via("Via: SIP/2.0/UDP 300.0.113.1;branch=z9hG4bKx"), "Via");
  ExpectError(with_via("Via: SIP/2.0/UDP [2001:db8::1;branch=z9hG4bKx"), "closing ']'");
  ExpectError(with_via("Via: SIP/2.0/UDP h;x=\"open;branch=z9hG4bKx"), "unterminated quoted value");
  ExpectError(with_via("Via: SIP/2.0/UDP h branch=z9hG4bKx"), "expected ';'");
  ExpectError(with_via("Via: , SIP/2.0/UDP h;branch=z9hG4bKx"), "empty top value");
  ExpectError(with_via("Via:"), "empty top value");

  auto with_call_id = [&](absl::string_view line) { return absl::StrCat(head, via, line, "\r\n", cseq, "\r\n"); };
  ExpectError(with_call_id("Call-ID:"), "Call-ID");
  ExpectError(with_call_id("Call-ID: two words"), "one word");
  ExpectError(absl::StrCat(head, via, call_id, "i: again\r\n", cseq, "\r\n"), "more than once");

  auto with_cseq = [&](absl::string_view line) { return absl::StrCat(head, via, call_id, line, "\r\n\r\n"); };
  ExpectError(with_cseq("CSeq: OPTIONS"), "expected a sequence number");
  ExpectError(with_cseq("CSeq: 7"), "expected whitespace after the sequence number");
  ExpectError(with_cseq("CSeq: 7OPTIONS"), "expected whitespace after the sequence number");
  ExpectError(with_cseq("CSeq: 7 OPTIONS extra"), "expected a method token");
  ExpectError(with_cseq("CSeq: 4294967296 OPTIONS"), "exceeds 2^32-1");
  ExpectError(with_cseq("CSeq: 99999999999999999999999999 OPTIONS"), "exceeds 2^32-1");
  EXPECT_EQ(Parse(with_cseq("CSeq: 4294967295 OPTIONS")).cseq, 4294967295u);
  ExpectError(absl::StrCat(head, via, call_id, cseq, "CSeq: 8 OPTIONS\r\n\r\n"), "more than once");

  ExpectError(absl::StrCat(head, via, "this line has no colon\r\n", call_id, cseq, "\r\n"), "expected ':'");
  ExpectError(absl::StrCat(head, via, ": no name\r\n", call_id, cseq, "\r\n"), "header name");
  ExpectError(absl::StrCat(head, " leading: space\r\n", via, call_id, cseq, "\r\n"), "continuation line");
}

TEST(ParseResponseTest, RequestsAndGarbage) {
  ExpectError("OPTIONS sip:alice@192.168.1.20 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
              "Call-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
              "not a response");
  ExpectError("", "not a response");
  ExpectError("SIP/2.0", "not a response");
  ExpectError("SIP/2.00 200 OK\r\n\r\n", "not a response");
  ExpectError("HTTP/1.1 200 OK\r\n\r\n", "not a response");
  ExpectError(absl::string_view("\x00\x01\x00\x00\x21\x12\xa4\x42", 8), "not a response");  // STUN
  ExpectError("\r\n\r\n", "not a response");  // a RFC 5626 keepalive
  ExpectError("SIP/2.0 200 OK", "no line end");
  ExpectError(std::string(2000, 'x'), "not a response");
}

TEST(ParseResponseTest, EveryTruncationIsAnError) {
  // A datagram cut anywhere before the end of its header section must not parse: it could be missing
  // the headers that say which transaction it answers.
  for (size_t n = 0; n < kYealink200.size(); ++n) {
    EXPECT_FALSE(ParseResponse(kYealink200.substr(0, n)).ok()) << n;
  }
  EXPECT_TRUE(ParseResponse(kYealink200).ok());
  // Errors quote at most a clipped, escaped part of the input.
  absl::StatusOr<ResponseSummary> cut = ParseResponse(kYealink200.substr(0, kYealink200.size() - 2));
  ASSERT_FALSE(cut.ok());
  EXPECT_THAT(cut.status().message(), HasSubstr("truncated"));
}

}  // namespace
}  // namespace latchkey::sip
