#include "media-relay/stun/stun_message.h"

#include <cstdint>
#include <string>
#include <vector>

#include "common/net/ip_address.h"
#include "common/net/socket_address.h"
#include "gtest/gtest.h"

namespace latchkey::relay::stun {
namespace {

using Bytes = std::vector<uint8_t>;

// RFC 5769 section 2: the test vectors, typed in from the RFC. (Their MESSAGE-INTEGRITY uses the
// password "VOkJxbRl1RmTxUk/WvJxBt"; this codec does not check it, but FINGERPRINT covers it.)
const TransactionId kRfcTransactionId = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

// 2.1. Sample Request
const Bytes kRfcRequest = {
    0x00, 0x01, 0x00, 0x58,  // Request type and message length
    0x21, 0x12, 0xa4, 0x42,  // Magic cookie
    0xb7, 0xe7, 0xa7, 0x01,  // }
    0xbc, 0x34, 0xd6, 0x86,  // }  Transaction ID
    0xfa, 0x87, 0xdf, 0xae,  // }
    0x80, 0x22, 0x00, 0x10,  // SOFTWARE attribute header
    0x53, 0x54, 0x55, 0x4e,  // }
    0x20, 0x74, 0x65, 0x73,  // }  User-agent...
    0x74, 0x20, 0x63, 0x6c,  // }  ...name
    0x69, 0x65, 0x6e, 0x74,  // }
    0x00, 0x24, 0x00, 0x04,  // PRIORITY attribute header
    0x6e, 0x00, 0x01, 0xff,  // ICE priority value
    0x80, 0x29, 0x00, 0x08,  // ICE-CONTROLLED attribute header
    0x93, 0x2f, 0xf9, 0xb1,  // }  Pseudo-random tie breaker...
    0x51, 0x26, 0x3b, 0x36,  // }   ...for ICE control
    0x00, 0x06, 0x00, 0x09,  // USERNAME attribute header
    0x65, 0x76, 0x74, 0x6a,  // }
    0x3a, 0x68, 0x36, 0x76,  // }  Username (9 bytes) and padding (3 bytes)
    0x59, 0x20, 0x20, 0x20,  // }
    0x00, 0x08, 0x00, 0x14,  // MESSAGE-INTEGRITY attribute header
    0x9a, 0xea, 0xa7, 0x0c,  // }
    0xbf, 0xd8, 0xcb, 0x56,  // }
    0x78, 0x1e, 0xf2, 0xb5,  // }  HMAC-SHA1 fingerprint
    0xb2, 0xd3, 0xf2, 0x49,  // }
    0xc1, 0xb5, 0x71, 0xa2,  // }
    0x80, 0x28, 0x00, 0x04,  // FINGERPRINT attribute header
    0xe5, 0x7a, 0x3b, 0xcf,  // CRC32 fingerprint
};

// 2.2. Sample IPv4 Response
const Bytes kRfcResponseV4 = {
    0x01, 0x01, 0x00, 0x3c,  // Response type and message length
    0x21, 0x12, 0xa4, 0x42,  // Magic cookie
    0xb7, 0xe7, 0xa7, 0x01,  // }
    0xbc, 0x34, 0xd6, 0x86,  // }  Transaction ID
    0xfa, 0x87, 0xdf, 0xae,  // }
    0x80, 0x22, 0x00, 0x0b,  // SOFTWARE attribute header
    0x74, 0x65, 0x73, 0x74,  // }
    0x20, 0x76, 0x65, 0x63,  // }  UTF-8 server name
    0x74, 0x6f, 0x72, 0x20,  // }
    0x00, 0x20, 0x00, 0x08,  // XOR-MAPPED-ADDRESS attribute header
    0x00, 0x01, 0xa1, 0x47,  // Address family (IPv4) and xor'd mapped port number
    0xe1, 0x12, 0xa6, 0x43,  // Xor'd mapped IPv4 address
    0x00, 0x08, 0x00, 0x14,  // MESSAGE-INTEGRITY attribute header
    0x2b, 0x91, 0xf5, 0x99,  // }
    0xfd, 0x9e, 0x90, 0xc3,  // }
    0x8c, 0x74, 0x89, 0xf9,  // }  HMAC-SHA1 fingerprint
    0x2a, 0xf9, 0xba, 0x53,  // }
    0xf0, 0x6b, 0xe7, 0xd7,  // }
    0x80, 0x28, 0x00, 0x04,  // FINGERPRINT attribute header
    0xc0, 0x7d, 0x4c, 0x96,  // CRC32 fingerprint
};

// 2.3. Sample IPv6 Response
const Bytes kRfcResponseV6 = {
    0x01, 0x01, 0x00, 0x48,  // Response type and message length
    0x21, 0x12, 0xa4, 0x42,  // Magic cookie
    0xb7, 0xe7, 0xa7, 0x01,  // }
    0xbc, 0x34, 0xd6, 0x86,  // }  Transaction ID
    0xfa, 0x87, 0xdf, 0xae,  // }
    0x80, 0x22, 0x00, 0x0b,  // SOFTWARE attribute header
    0x74, 0x65, 0x73, 0x74,  // }
    0x20, 0x76, 0x65, 0x63,  // }  UTF-8 server name
    0x74, 0x6f, 0x72, 0x20,  // }
    0x00, 0x20, 0x00, 0x14,  // XOR-MAPPED-ADDRESS attribute header
    0x00, 0x02, 0xa1, 0x47,  // Address family (IPv6) and xor'd mapped port number
    0x01, 0x13, 0xa9, 0xfa,  // }
    0xa5, 0xd3, 0xf1, 0x79,  // }  Xor'd mapped IPv6 address
    0xbc, 0x25, 0xf4, 0xb5,  // }
    0xbe, 0xd2, 0xb9, 0xd9,  // }
    0x00, 0x08, 0x00, 0x14,  // MESSAGE-INTEGRITY attribute header
    0xa3, 0x82, 0x95, 0x4e,  // }
    0x4b, 0xe6, 0x7b, 0xf1,  // }
    0x17, 0x84, 0xc9, 0x7c,  // }  HMAC-SHA1 fingerprint
    0x82, 0x92, 0xc2, 0x75,  // }
    0xbf, 0xe3, 0xed, 0x41,  // }
    0x80, 0x28, 0x00, 0x04,  // FINGERPRINT attribute header
    0xc8, 0xfb, 0x0b, 0x4c,  // CRC32 fingerprint
};

net::IpAddress Ip(const std::string& text) { return net::IpAddress::Parse(text).value(); }

// The Message's string views point into `b`: keep the bytes alive while using them.
std::optional<Message> ParseBytes(const Bytes& b, ParseError* error = nullptr) {
  return Parse(b.data(), b.size(), error);
}

ParseError ErrorOf(const Bytes& b) {
  ParseError error = ParseError::kNone;
  EXPECT_FALSE(ParseBytes(b, &error).has_value());
  return error;
}

const TransactionId kId = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

// ---------------------------------------------------------------------------------------------
// RFC 5769 vectors

TEST(StunMessageTest, Rfc5769SampleRequest) {
  ParseError error;
  auto m = ParseBytes(kRfcRequest, &error);
  ASSERT_TRUE(m.has_value()) << ParseErrorName(error);
  EXPECT_EQ(m->type, kBindingRequest);
  EXPECT_EQ(m->method, kMethodBinding);
  EXPECT_EQ(m->message_class, MessageClass::kRequest);
  EXPECT_EQ(m->transaction_id, kRfcTransactionId);
  ASSERT_TRUE(m->software.has_value());
  EXPECT_EQ(*m->software, "STUN test client");
  EXPECT_TRUE(m->has_message_integrity);
  EXPECT_TRUE(m->has_fingerprint);
  EXPECT_FALSE(m->mapped_address.has_value());
  EXPECT_FALSE(m->xor_mapped_address.has_value());
  EXPECT_FALSE(m->unknown_required_attribute.has_value()) << "PRIORITY and USERNAME are known";
}

TEST(StunMessageTest, Rfc5769SampleIpv4Response) {
  ParseError error;
  auto m = ParseBytes(kRfcResponseV4, &error);
  ASSERT_TRUE(m.has_value()) << ParseErrorName(error);
  EXPECT_EQ(m->type, kBindingSuccess);
  EXPECT_EQ(m->message_class, MessageClass::kSuccessResponse);
  EXPECT_EQ(m->transaction_id, kRfcTransactionId);
  EXPECT_EQ(*m->software, "test vector");
  ASSERT_TRUE(m->xor_mapped_address.has_value());
  EXPECT_EQ(*m->xor_mapped_address, (net::SocketAddress{Ip("192.0.2.1"), 32853}));
  EXPECT_EQ(m->reflexive_address(), m->xor_mapped_address);
  EXPECT_TRUE(m->has_message_integrity);
  EXPECT_TRUE(m->has_fingerprint);
}

TEST(StunMessageTest, Rfc5769SampleIpv6Response) {
  ParseError error;
  auto m = ParseBytes(kRfcResponseV6, &error);
  ASSERT_TRUE(m.has_value()) << ParseErrorName(error);
  EXPECT_EQ(m->message_class, MessageClass::kSuccessResponse);
  ASSERT_TRUE(m->xor_mapped_address.has_value());
  EXPECT_EQ(*m->xor_mapped_address, (net::SocketAddress{Ip("2001:db8:1234:5678:11:2233:4455:6677"), 32853}));
  EXPECT_TRUE(m->has_fingerprint);
}

TEST(StunMessageTest, EncoderProducesTheRfcXorMappedAddressBytes) {
  // Header (20) + XOR-MAPPED-ADDRESS: the vectors' attribute starts at byte 36 (after SOFTWARE).
  const Bytes v4 = MessageBuilder(kBindingSuccess, kRfcTransactionId)
                       .AddXorMappedAddress({Ip("192.0.2.1"), 32853})
                       .Finish(/*fingerprint=*/false);
  ASSERT_EQ(v4.size(), 20u + 12u);
  EXPECT_EQ(Bytes(v4.begin() + 20, v4.end()), Bytes(kRfcResponseV4.begin() + 36, kRfcResponseV4.begin() + 48));
  const Bytes v6 = MessageBuilder(kBindingSuccess, kRfcTransactionId)
                       .AddXorMappedAddress({Ip("2001:db8:1234:5678:11:2233:4455:6677"), 32853})
                       .Finish(/*fingerprint=*/false);
  ASSERT_EQ(v6.size(), 20u + 24u);
  EXPECT_EQ(Bytes(v6.begin() + 20, v6.end()), Bytes(kRfcResponseV6.begin() + 36, kRfcResponseV6.begin() + 60));
}

TEST(StunMessageTest, FingerprintFormulaMatchesTheRfc) {
  // CRC-32 of everything before the FINGERPRINT attribute (length field already counting it), XOR
  // 0x5354554E. The builder and the parser share this; the vectors pin it to the RFC.
  for (const Bytes* vector : {&kRfcRequest, &kRfcResponseV4, &kRfcResponseV6}) {
    const size_t at = vector->size() - 8;
    const uint32_t expected = (uint32_t{(*vector)[at + 4]} << 24) | (uint32_t{(*vector)[at + 5]} << 16) |
                              (uint32_t{(*vector)[at + 6]} << 8) | uint32_t{(*vector)[at + 7]};
    EXPECT_EQ(Crc32(vector->data(), at) ^ kFingerprintXor, expected);
  }
}

TEST(StunMessageTest, BuilderFinishesOnce) {
  MessageBuilder builder(kBindingRequest, kId);
  EXPECT_EQ(builder.Finish().size(), 28u);
  EXPECT_TRUE(builder.Finish().empty());
}

TEST(StunMessageTest, Crc32MatchesTheStandardCheckValue) {
  const std::string check = "123456789";
  EXPECT_EQ(Crc32(reinterpret_cast<const uint8_t*>(check.data()), check.size()), 0xCBF43926u);
}

TEST(StunMessageTest, EverySingleBitFlipIsRejectedOrLosesTheFingerprint) {
  for (const Bytes* vector : {&kRfcRequest, &kRfcResponseV4, &kRfcResponseV6}) {
    for (size_t bit = 0; bit < vector->size() * 8; ++bit) {
      Bytes b = *vector;
      b[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      auto m = ParseBytes(b);
      // A flip of FINGERPRINT's type turns it into another (ignored) attribute; anything else fails.
      if (m) {
        EXPECT_FALSE(m->has_fingerprint) << "bit " << bit;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Rejections

TEST(StunMessageTest, FingerprintMismatchRejected) {
  Bytes b = kRfcResponseV4;
  b.back() ^= 0x01;
  EXPECT_EQ(ErrorOf(b), ParseError::kBadFingerprint);
  // Also when the change is in the body.
  b = kRfcResponseV4;
  b[40] ^= 0x80;  // XOR-MAPPED-ADDRESS port
  EXPECT_EQ(ErrorOf(b), ParseError::kBadFingerprint);
}

TEST(StunMessageTest, FingerprintMustBeLastAndFourBytes) {
  // A valid message with FINGERPRINT, then one more attribute appended (length fixed up).
  Bytes b = BindingRequest(kId);
  b.insert(b.end(), {0x80, 0x22, 0x00, 0x04, 'a', 'b', 'c', 'd'});
  b[3] = static_cast<uint8_t>(b.size() - 20);
  EXPECT_EQ(ErrorOf(b), ParseError::kBadFingerprint);

  const uint8_t value[8] = {};
  const Bytes wrong_length =
      MessageBuilder(kBindingRequest, kId).AddAttribute(attr::kFingerprint, value, 8).Finish(false);
  EXPECT_EQ(ErrorOf(wrong_length), ParseError::kBadFingerprint);
}

TEST(StunMessageTest, TruncatedMessagesRejected) {
  for (size_t size = 0; size < kRfcResponseV4.size(); ++size) {
    const Bytes b(kRfcResponseV4.begin(), kRfcResponseV4.begin() + size);
    const ParseError error = ErrorOf(b);
    EXPECT_EQ(error, size < 20 ? ParseError::kTooShort : ParseError::kBadLength) << size;
  }
  EXPECT_FALSE(Parse(nullptr, 0).has_value());
}

TEST(StunMessageTest, TrailingBytesRejected) {
  Bytes b = kRfcResponseV4;
  b.insert(b.end(), {0, 0, 0, 0});
  EXPECT_EQ(ErrorOf(b), ParseError::kBadLength);
}

TEST(StunMessageTest, OverlongAttributeRejected) {
  // SOFTWARE claims 255 bytes inside an 80-byte message.
  Bytes b = kRfcResponseV4;
  b[22] = 0x00;
  b[23] = 0xff;
  EXPECT_EQ(ErrorOf(b), ParseError::kTruncatedAttribute);
  // The last attribute's padding must fit too: a 5-byte value needs 8 bytes.
  Bytes c = MessageBuilder(kBindingRequest, kId).AddSoftware("abcd").Finish(false);
  c[23] = 5;
  EXPECT_EQ(ErrorOf(c), ParseError::kTruncatedAttribute);
  // The largest length field, in a minimal message.
  Bytes d = MessageBuilder(kBindingRequest, kId).AddSoftware("abcd").Finish(false);
  d[22] = 0xff;
  d[23] = 0xff;
  EXPECT_EQ(ErrorOf(d), ParseError::kTruncatedAttribute);
}

TEST(StunMessageTest, HeaderChecks) {
  Bytes b = BindingRequest(kId);
  b[0] |= 0x80;  // top bits: RTP / other protocols
  EXPECT_EQ(ErrorOf(b), ParseError::kNotStun);
  b = BindingRequest(kId);
  b[4] ^= 0x01;  // cookie
  EXPECT_EQ(ErrorOf(b), ParseError::kNotStun);
  b = BindingRequest(kId);
  b.push_back(0);
  b[3] += 1;  // length 9: not a multiple of 4
  EXPECT_EQ(ErrorOf(b), ParseError::kBadLength);
}

TEST(StunMessageTest, MalformedAddressesRejected) {
  const uint8_t bad_family[8] = {0, 0x03, 0x12, 0x34, 1, 2, 3, 4};
  EXPECT_EQ(ErrorOf(MessageBuilder(kBindingSuccess, kId).AddAttribute(attr::kMappedAddress, bad_family, 8).Finish()),
            ParseError::kBadAddress);
  const uint8_t v4_too_long[12] = {0, 0x01, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(
      ErrorOf(MessageBuilder(kBindingSuccess, kId).AddAttribute(attr::kXorMappedAddress, v4_too_long, 12).Finish()),
      ParseError::kBadAddress);
  const uint8_t v6_too_short[8] = {0, 0x02, 0x12, 0x34, 1, 2, 3, 4};
  EXPECT_EQ(
      ErrorOf(MessageBuilder(kBindingSuccess, kId).AddAttribute(attr::kXorMappedAddress, v6_too_short, 8).Finish()),
      ParseError::kBadAddress);
  const uint8_t tiny[2] = {0, 0x01};
  EXPECT_EQ(ErrorOf(MessageBuilder(kBindingSuccess, kId).AddAttribute(attr::kMappedAddress, tiny, 2).Finish()),
            ParseError::kBadAddress);
}

TEST(StunMessageTest, ErrorCodeDecodeAndRejects) {
  const Bytes m_bytes = MessageBuilder(kBindingError, kId).AddErrorCode(401, "Unauthorized").Finish();
  auto m = ParseBytes(m_bytes);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->message_class, MessageClass::kErrorResponse);
  EXPECT_EQ(m->method, kMethodBinding);
  ASSERT_TRUE(m->error_code.has_value());
  EXPECT_EQ(m->error_code->code, 401);
  EXPECT_EQ(m->error_code->reason, "Unauthorized");

  const uint8_t short_value[3] = {0, 0, 4};
  EXPECT_EQ(ErrorOf(MessageBuilder(kBindingError, kId).AddAttribute(attr::kErrorCode, short_value, 3).Finish()),
            ParseError::kBadErrorCode);
  const uint8_t bad_class[4] = {0, 0, 7, 0};
  EXPECT_EQ(ErrorOf(MessageBuilder(kBindingError, kId).AddAttribute(attr::kErrorCode, bad_class, 4).Finish()),
            ParseError::kBadErrorCode);
  const uint8_t bad_number[4] = {0, 0, 4, 100};
  EXPECT_EQ(ErrorOf(MessageBuilder(kBindingError, kId).AddAttribute(attr::kErrorCode, bad_number, 4).Finish()),
            ParseError::kBadErrorCode);
}

// ---------------------------------------------------------------------------------------------
// Attribute rules

TEST(StunMessageTest, FirstOfDuplicateAttributesWins) {
  const Bytes m_bytes = MessageBuilder(kBindingSuccess, kId)
                          .AddXorMappedAddress({Ip("203.0.113.1"), 1000})
                          .AddXorMappedAddress({Ip("203.0.113.2"), 2000})
                          .AddSoftware("first")
                          .AddSoftware("second")
                          .Finish();
  auto m = ParseBytes(m_bytes);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->xor_mapped_address->ip, Ip("203.0.113.1"));
  EXPECT_EQ(*m->software, "first");
}

TEST(StunMessageTest, AttributesAfterMessageIntegrityIgnored) {
  const uint8_t hmac[20] = {};
  const Bytes m_bytes = MessageBuilder(kBindingSuccess, kId)
                          .AddAttribute(attr::kMessageIntegrity, hmac, sizeof(hmac))
                          .AddXorMappedAddress({Ip("203.0.113.1"), 1000})
                          .Finish();
  auto m = ParseBytes(m_bytes);
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(m->has_message_integrity);
  EXPECT_TRUE(m->has_fingerprint);
  EXPECT_FALSE(m->xor_mapped_address.has_value());
}

TEST(StunMessageTest, UnknownComprehensionRequiredAttributeReported) {
  const uint8_t value[4] = {1, 2, 3, 4};
  const Bytes optional_only_bytes = MessageBuilder(kBindingRequest, kId).AddAttribute(0x8abc, value, 4).Finish();
  auto optional_only = ParseBytes(optional_only_bytes);
  ASSERT_TRUE(optional_only.has_value());
  EXPECT_FALSE(optional_only->unknown_required_attribute.has_value());
  auto required = ParseBytes(
      MessageBuilder(kBindingRequest, kId).AddAttribute(0x7abc, value, 4).AddAttribute(0x7abd, value, 4).Finish());
  ASSERT_TRUE(required.has_value());
  EXPECT_EQ(required->unknown_required_attribute, 0x7abc);
}

TEST(StunMessageTest, PaddingBytesAreNotChecked) {
  // The RFC's USERNAME pads with spaces; a zero-length attribute has no padding at all.
  const Bytes m_bytes = MessageBuilder(kBindingRequest, kId).AddAttribute(attr::kSoftware, nullptr, 0).Finish();
  auto m = ParseBytes(m_bytes);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m->software, "");
}

// ---------------------------------------------------------------------------------------------
// Builders and round trips

TEST(StunMessageTest, MessageTypeInterleavesMethodAndClass) {
  EXPECT_EQ(MessageType(kMethodBinding, MessageClass::kRequest), 0x0001);
  EXPECT_EQ(MessageType(kMethodBinding, MessageClass::kIndication), 0x0011);
  EXPECT_EQ(MessageType(kMethodBinding, MessageClass::kSuccessResponse), 0x0101);
  EXPECT_EQ(MessageType(kMethodBinding, MessageClass::kErrorResponse), 0x0111);
  EXPECT_EQ(MessageType(0x0003, MessageClass::kRequest), 0x0003);  // TURN Allocate
  for (uint16_t method : {0x001, 0x00f, 0x010, 0x07f, 0x080, 0xfff}) {
    for (auto c : {MessageClass::kRequest, MessageClass::kIndication, MessageClass::kSuccessResponse,
                   MessageClass::kErrorResponse}) {
      const Bytes m_bytes = MessageBuilder(MessageType(method, c), kId).Finish();
  auto m = ParseBytes(m_bytes);
      ASSERT_TRUE(m.has_value());
      EXPECT_EQ(m->method, method);
      EXPECT_EQ(m->message_class, c);
    }
  }
}

TEST(StunMessageTest, BindingRequestRoundTrip) {
  const Bytes b = BindingRequest(kId);
  EXPECT_EQ(b.size(), 28u);
  auto m = ParseBytes(b);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->type, kBindingRequest);
  EXPECT_EQ(m->transaction_id, kId);
  EXPECT_TRUE(m->has_fingerprint);
  EXPECT_FALSE(m->reflexive_address().has_value());
}

TEST(StunMessageTest, BindingSuccessRoundTrip) {
  for (const net::SocketAddress& mapped :
       {net::SocketAddress{Ip("203.0.113.7"), 4242}, net::SocketAddress{Ip("2001:db8::7"), 65535},
        net::SocketAddress{Ip("0.0.0.0"), 1}, net::SocketAddress{Ip("::ffff:198.51.100.1"), 3478}}) {
    const Bytes b = BindingSuccess(kId, mapped);
    auto m = ParseBytes(b);
    ASSERT_TRUE(m.has_value()) << mapped.ToString();
    EXPECT_EQ(m->type, kBindingSuccess);
    EXPECT_EQ(m->transaction_id, kId);
    EXPECT_EQ(m->xor_mapped_address, mapped);
    EXPECT_FALSE(m->mapped_address.has_value());
    EXPECT_EQ(*m->software, "latchkey");
    EXPECT_TRUE(m->has_fingerprint);
  }
}

TEST(StunMessageTest, MappedAddressRoundTripAndXorPreferred) {
  const Bytes m_bytes = MessageBuilder(kBindingSuccess, kId)
                          .AddMappedAddress({Ip("198.51.100.9"), 9})
                          .AddXorMappedAddress({Ip("203.0.113.9"), 99})
                          .Finish();
  auto m = ParseBytes(m_bytes);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->mapped_address, (net::SocketAddress{Ip("198.51.100.9"), 9}));
  EXPECT_EQ(m->reflexive_address(), (net::SocketAddress{Ip("203.0.113.9"), 99}));

  const Bytes legacy_bytes = MessageBuilder(kBindingSuccess, kId).AddMappedAddress({Ip("2001:db8::9"), 9}).Finish();
  auto legacy = ParseBytes(legacy_bytes);
  ASSERT_TRUE(legacy.has_value());
  EXPECT_EQ(legacy->reflexive_address(), (net::SocketAddress{Ip("2001:db8::9"), 9}));
}

TEST(StunMessageTest, ParseErrorNamesAreDistinct) {
  EXPECT_STREQ(ParseErrorName(ParseError::kBadFingerprint), "FINGERPRINT malformed, misplaced or wrong");
  EXPECT_STRNE(ParseErrorName(ParseError::kTooShort), ParseErrorName(ParseError::kBadLength));
}

}  // namespace
}  // namespace latchkey::relay::stun
