#include "media-relay/stun/stun_responder.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/net/ip_address.h"
#include "common/net/socket_address.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "media-relay/stun/stun_message.h"

namespace latchkey::relay::stun {
namespace {

using ::testing::HasSubstr;
using Bytes = std::vector<uint8_t>;

const TransactionId kTid = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc};

net::SocketAddress Addr(const std::string& text) { return net::SocketAddress::Parse(text).value(); }

// Answers `request` into a buffer of `capacity` bytes; the response, or nullopt with the status
// kept in `*status`.
std::optional<Bytes> Answer(const Bytes& request, const net::SocketAddress& source, size_t capacity = 1500,
                            absl::Status* status = nullptr) {
  Bytes out(capacity, 0xEE);
  absl::StatusOr<size_t> n = AnswerBindingRequest(request, source, absl::MakeSpan(out));
  if (status) *status = n.status();
  if (!n.ok()) return std::nullopt;
  EXPECT_LE(*n, capacity);
  out.resize(*n);
  return out;
}

Message ParseOrDie(const Bytes& bytes) {
  ParseError error = ParseError::kNone;
  std::optional<Message> m = Parse(bytes.data(), bytes.size(), &error);
  EXPECT_TRUE(m.has_value()) << ParseErrorName(error);
  return m.value_or(Message{});
}

void ExpectRefused(const Bytes& request, absl::string_view message_part) {
  absl::Status status;
  EXPECT_EQ(Answer(request, Addr("198.51.100.7:40000"), 1500, &status), std::nullopt);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(status.message(), HasSubstr(message_part));
}

// The value of the first attribute of `type` in an encoded message (no validation: test helper).
std::optional<Bytes> AttributeValue(const Bytes& message, uint16_t type) {
  for (size_t offset = kHeaderSize; offset + 4 <= message.size();) {
    const uint16_t t = static_cast<uint16_t>((message[offset] << 8) | message[offset + 1]);
    const size_t length = static_cast<size_t>((message[offset + 2] << 8) | message[offset + 3]);
    if (t == type) return Bytes(message.begin() + offset + 4, message.begin() + offset + 4 + length);
    offset += 4 + ((length + 3) & ~size_t{3});
  }
  return std::nullopt;
}

// RFC 5769 section 2.1 sample request: SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
// MESSAGE-INTEGRITY, FINGERPRINT, as an ICE agent sends it.
const Bytes kRfc5769Request = {
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
};

TEST(StunResponderTest, AnswersIpv4ClientWithItsSource) {
  const net::SocketAddress source = Addr("198.51.100.7:40000");
  std::optional<Bytes> response = Answer(BindingRequest(kTid), source);
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->size(), 52u);  // header, XOR-MAPPED-ADDRESS (12), SOFTWARE (12), FINGERPRINT (8)
  const Message m = ParseOrDie(*response);
  EXPECT_EQ(m.type, kBindingSuccess);
  EXPECT_EQ(m.transaction_id, kTid);
  EXPECT_EQ(m.xor_mapped_address, source);
  EXPECT_EQ(m.mapped_address, std::nullopt);
  EXPECT_EQ(m.software, std::optional<absl::string_view>("latchkey"));
  EXPECT_TRUE(m.has_fingerprint);
  EXPECT_FALSE(m.unknown_required_attribute.has_value());
}

TEST(StunResponderTest, AnswersIpv6Client) {
  const net::SocketAddress source = Addr("[2001:db8:4::77]:51234");
  std::optional<Bytes> response = Answer(BindingRequest(kTid), source);
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->size(), 64u);
  const Message m = ParseOrDie(*response);
  EXPECT_EQ(m.type, kBindingSuccess);
  EXPECT_EQ(m.transaction_id, kTid);
  ASSERT_TRUE(m.xor_mapped_address.has_value());
  EXPECT_TRUE(m.xor_mapped_address->ip.is_v6());
  EXPECT_EQ(m.xor_mapped_address, source);
  EXPECT_TRUE(m.has_fingerprint);
}

TEST(StunResponderTest, V4MappedSourceIsAnsweredAsIpv4) {
  // What a dual-stack socket reports for an IPv4 peer.
  std::optional<Bytes> response = Answer(BindingRequest(kTid), Addr("[::ffff:198.51.100.7]:40000"));
  ASSERT_TRUE(response.has_value());
  const Message m = ParseOrDie(*response);
  EXPECT_EQ(m.xor_mapped_address, Addr("198.51.100.7:40000"));
  EXPECT_EQ(response->size(), 52u);
}

TEST(StunResponderTest, AnswersRequestsWithOptionalAndIceAttributes) {
  // MESSAGE-INTEGRITY is not checked; ICE-CONTROLLED (0x8029) is comprehension-optional.
  std::optional<Bytes> response = Answer(kRfc5769Request, Addr("192.0.2.1:32853"));
  ASSERT_TRUE(response.has_value());
  const Message m = ParseOrDie(*response);
  EXPECT_EQ(m.type, kBindingSuccess);
  EXPECT_EQ(m.transaction_id, (TransactionId{0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae}));
  EXPECT_EQ(m.xor_mapped_address, Addr("192.0.2.1:32853"));
  EXPECT_FALSE(m.has_message_integrity);

  // Without FINGERPRINT in the request (a bare 20-byte request), the answer still carries one.
  const Bytes bare = MessageBuilder(kBindingRequest, kTid).Finish(/*fingerprint=*/false);
  ASSERT_EQ(bare.size(), 20u);
  response = Answer(bare, Addr("192.0.2.1:1"));
  ASSERT_TRUE(response.has_value());
  EXPECT_TRUE(ParseOrDie(*response).has_fingerprint);

  const uint8_t value[4] = {1, 2, 3, 4};
  const Bytes optional_unknown = MessageBuilder(kBindingRequest, kTid).AddAttribute(0xC057, value, 4).Finish();
  response = Answer(optional_unknown, Addr("192.0.2.1:2"));
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(ParseOrDie(*response).type, kBindingSuccess);
}

TEST(StunResponderTest, UnknownRequiredAttributeGets420) {
  const uint8_t value[4] = {1, 2, 3, 4};
  const Bytes request =
      MessageBuilder(kBindingRequest, kTid).AddAttribute(0x7F31, value, 4).AddAttribute(0x7F32, value, 4).Finish();
  std::optional<Bytes> response = Answer(request, Addr("198.51.100.7:40000"));
  ASSERT_TRUE(response.has_value());
  const Message m = ParseOrDie(*response);
  EXPECT_EQ(m.type, kBindingError);
  EXPECT_EQ(m.transaction_id, kTid);
  ASSERT_TRUE(m.error_code.has_value());
  EXPECT_EQ(m.error_code->code, 420);
  EXPECT_EQ(m.error_code->reason, "Unknown Attribute");
  EXPECT_EQ(m.xor_mapped_address, std::nullopt);
  EXPECT_EQ(m.software, std::optional<absl::string_view>("latchkey"));
  EXPECT_TRUE(m.has_fingerprint);
  // The codec reports the first unknown attribute; that is the one listed.
  EXPECT_EQ(AttributeValue(*response, attr::kUnknownAttributes), (Bytes{0x7F, 0x31}));
  EXPECT_EQ(response->size(), 76u);  // ERROR-CODE 28, UNKNOWN-ATTRIBUTES 8, SOFTWARE 12, FINGERPRINT 8
}

TEST(StunResponderTest, RefusesWhatMustNotBeAnswered) {
  // Responses and indications are never answered.
  ExpectRefused(BindingSuccess(kTid, Addr("192.0.2.1:1")), "not a Binding request: a Binding success response");
  ExpectRefused(MessageBuilder(kBindingError, kTid).AddErrorCode(400, "Bad Request").Finish(), "error response");
  ExpectRefused(MessageBuilder(MessageType(kMethodBinding, MessageClass::kIndication), kTid).Finish(), "indication");
  // Another method (TURN Allocate).
  ExpectRefused(MessageBuilder(MessageType(0x003, MessageClass::kRequest), kTid).Finish(), "method 0x003");
}

TEST(StunResponderTest, RefusesMalformedAndForeignDatagrams) {
  Bytes corrupted = BindingRequest(kTid);
  corrupted.back() ^= 0x01;
  ExpectRefused(corrupted, "FINGERPRINT");

  Bytes bad_length = BindingRequest(kTid);
  bad_length[3] = 0x0C;
  ExpectRefused(bad_length, "length field");

  ExpectRefused({}, "shorter than a STUN header");
  ExpectRefused(Bytes(19, 0), "shorter than a STUN header");
  // An RTP packet (version 2).
  Bytes rtp = {0x80, 0x00, 0x12, 0x34, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef};
  rtp.resize(172, 0xff);
  ExpectRefused(rtp, "not STUN");

  // RFC 3489: the same header, but a 16-byte transaction id where the cookie would be.
  Bytes classic = {0x00, 0x01, 0x00, 0x00, 0x9a, 0x0b, 0x1c, 0x2d};
  classic.resize(20, 0x42);
  ExpectRefused(classic, "RFC 3489");
  classic.push_back(0);  // length field no longer matches: just not STUN
  ExpectRefused(classic, "not STUN");
}

TEST(StunResponderTest, OutputBufferTooSmall) {
  const Bytes request = BindingRequest(kTid);
  const net::SocketAddress source = Addr("198.51.100.7:40000");
  EXPECT_TRUE(Answer(request, source, 52).has_value());
  for (size_t capacity : {size_t{51}, size_t{20}, size_t{0}}) {
    Bytes out(capacity + 4, 0xEE);
    absl::StatusOr<size_t> n = AnswerBindingRequest(request, source, absl::MakeSpan(out.data(), capacity));
    ASSERT_FALSE(n.ok()) << capacity;
    EXPECT_EQ(n.status().code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(n.status().message(), HasSubstr("needs 52 bytes"));
    EXPECT_EQ(out, Bytes(capacity + 4, 0xEE)) << "wrote into a buffer it refused";
  }
  // The header's promise: 64 bytes always hold a success response, 76 a 420.
  EXPECT_TRUE(Answer(request, Addr("[2001:db8::1]:1"), 64).has_value());
  const uint8_t value[4] = {0};
  EXPECT_TRUE(Answer(MessageBuilder(kBindingRequest, kTid).AddAttribute(0x7FFF, value, 4).Finish(), source, 76)
                  .has_value());
}

}  // namespace
}  // namespace latchkey::relay::stun
