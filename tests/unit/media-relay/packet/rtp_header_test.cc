#include "media-relay/packet/rtp_header.h"

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace latchkey::relay {
namespace {

using Bytes = std::vector<uint8_t>;

// V=2, PT 0 (PCMU), seq 0x1234, ts 0x01020304, SSRC 0xdeadbeef, then `payload` bytes.
Bytes Rtp(uint8_t first = 0x80, uint8_t second = 0x00, size_t payload = 160) {
  Bytes b = {first, second, 0x12, 0x34, 0x01, 0x02, 0x03, 0x04, 0xde, 0xad, 0xbe, 0xef};
  b.resize(b.size() + payload, 0xd5);
  return b;
}

Bytes Truncate(Bytes b, size_t size) {
  b.resize(size);
  return b;
}

Bytes Concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A 28-byte SR without report blocks, SSRC 0x11223344.
Bytes SenderReport() {
  return {0x80, 200, 0x00, 0x06, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5};
}
// RR with one report block (8 + 24 bytes), SSRC 0x55667788.
Bytes ReceiverReport() {
  Bytes b = {0x81, 201, 0x00, 0x07, 0x55, 0x66, 0x77, 0x88};
  b.resize(32, 0);
  return b;
}
// SDES with one chunk: SSRC + CNAME "ab" + end, padded to a word.
Bytes Sdes() { return {0x81, 202, 0x00, 0x02, 0x55, 0x66, 0x77, 0x88, 0x01, 0x02, 'a', 'b'}; }

// ---------------------------------------------------------------------------------------------
// ParseRtp

TEST(ParseRtpTest, MinimalPacket) {
  const Bytes b = Rtp(0x80, 0x00, 0);
  auto rtp = ParseRtp(b.data(), b.size());
  ASSERT_TRUE(rtp.has_value());
  EXPECT_EQ(rtp->payload_type, 0);
  EXPECT_FALSE(rtp->marker);
  EXPECT_EQ(rtp->sequence, 0x1234);
  EXPECT_EQ(rtp->timestamp, 0x01020304u);
  EXPECT_EQ(rtp->ssrc, 0xdeadbeefu);
  EXPECT_EQ(rtp->header_length, 12u);
  EXPECT_EQ(rtp->payload_length, 0u);
}

TEST(ParseRtpTest, MarkerAndDynamicPayloadType) {
  const Bytes b = Rtp(0x80, 0x80 | 111, 40);
  auto rtp = ParseRtp(b.data(), b.size());
  ASSERT_TRUE(rtp.has_value());
  EXPECT_EQ(rtp->payload_type, 111);
  EXPECT_TRUE(rtp->marker);
  EXPECT_EQ(rtp->payload_length, 40u);
}

TEST(ParseRtpTest, CsrcExtensionAndPadding) {
  // CC=2, X=1, P=1: 12 + 8 CSRC + 4 ext header + 8 ext data = 32-byte header, 20 payload, 4 padding.
  Bytes b = {0xb2, 0x08, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3};
  b.insert(b.end(), {0, 0, 0, 1, 0, 0, 0, 2});              // CSRCs
  b.insert(b.end(), {0xbe, 0xde, 0x00, 0x02});              // RFC 8285 one-byte, 2 words
  b.insert(b.end(), {0x10, 0xff, 0, 0, 0x22, 1, 2, 0});     // extension data
  b.insert(b.end(), 20, 0x55);                              // payload
  b.insert(b.end(), {0, 0, 0, 4});                          // padding, count 4
  auto rtp = ParseRtp(b.data(), b.size());
  ASSERT_TRUE(rtp.has_value());
  EXPECT_EQ(rtp->header_length, 32u);
  EXPECT_EQ(rtp->payload_length, 20u);
  EXPECT_EQ(rtp->payload_type, 8);
}

TEST(ParseRtpTest, PaddingMayConsumeTheWholePayload) {
  Bytes b = Rtp(0xa0, 0x00, 0);
  b.insert(b.end(), {0, 0, 0, 4});
  auto rtp = ParseRtp(b.data(), b.size());
  ASSERT_TRUE(rtp.has_value());
  EXPECT_EQ(rtp->payload_length, 0u);
}

struct RejectCase {
  std::string name;
  Bytes packet;
};

void PrintTo(const RejectCase& c, std::ostream* os) { *os << c.name; }

class ParseRtpRejectTest : public ::testing::TestWithParam<RejectCase> {};

TEST_P(ParseRtpRejectTest, Rejects) {
  const Bytes& b = GetParam().packet;
  EXPECT_FALSE(ParseRtp(b.data(), b.size()).has_value());
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, ParseRtpRejectTest,
    ::testing::Values(
        RejectCase{"Empty", {}},
        RejectCase{"ElevenBytes", Truncate(Rtp(0x80, 0, 0), 11)},
        RejectCase{"Version0", Rtp(0x00)},
        RejectCase{"Version1", Rtp(0x40)},
        RejectCase{"Version3", Rtp(0xc0)},
        RejectCase{"CsrcBeyondPacket", Rtp(0x8f, 0, 56)},  // 15 CSRCs need 60 bytes after the header
        RejectCase{"ExtensionHeaderCut", Concat(Rtp(0x90, 0, 0), {0xbe, 0xde})},
        RejectCase{"ExtensionLengthBeyondPacket", Concat(Rtp(0x90, 0, 0), {0xbe, 0xde, 0x00, 0x03, 0, 0, 0, 0})},
        RejectCase{"ExtensionLengthMax", Concat(Rtp(0x90, 0, 0), {0xbe, 0xde, 0xff, 0xff})},
        RejectCase{"PaddingZero", Concat(Rtp(0xa0, 0, 0), {1, 2, 3, 0})},
        RejectCase{"PaddingIntoHeader", Concat(Rtp(0xa0, 0, 0), {0, 0, 0, 5})},
        RejectCase{"PaddingIntoExtension",
                   Concat(Rtp(0xb0, 0, 0), {0xbe, 0xde, 0x00, 0x01, 0, 0, 0, 0x02})},
        RejectCase{"RtcpSenderReport", SenderReport()},
        RejectCase{"RtcpType192", Rtp(0x80, 192)},
        RejectCase{"RtcpType223", Rtp(0x80, 223)}),
    [](const ::testing::TestParamInfo<RejectCase>& info) { return info.param.name; });

TEST(ParseRtpTest, SecondByteJustOutsideRtcpRangeIsRtp) {
  for (uint8_t second : {uint8_t{191}, uint8_t{224}, uint8_t{0x7f}}) {
    const Bytes b = Rtp(0x80, second);
    EXPECT_TRUE(ParseRtp(b.data(), b.size()).has_value()) << int{second};
  }
}

TEST(ParseRtpTest, NullData) { EXPECT_FALSE(ParseRtp(nullptr, 100).has_value()); }

// ---------------------------------------------------------------------------------------------
// ParseRtcp

TEST(ParseRtcpTest, SenderReport) {
  const Bytes b = SenderReport();
  auto rtcp = ParseRtcp(b.data(), b.size());
  ASSERT_TRUE(rtcp.has_value());
  EXPECT_EQ(rtcp->packet_type, 200);
  EXPECT_EQ(rtcp->sender_ssrc, 0x11223344u);
}

TEST(ParseRtcpTest, ReceiverReportWithBlock) {
  const Bytes b = ReceiverReport();
  auto rtcp = ParseRtcp(b.data(), b.size());
  ASSERT_TRUE(rtcp.has_value());
  EXPECT_EQ(rtcp->packet_type, 201);
  EXPECT_EQ(rtcp->sender_ssrc, 0x55667788u);
}

TEST(ParseRtcpTest, EmptyReceiverReportIsEightBytes) {
  const Bytes b = {0x80, 201, 0, 1, 1, 2, 3, 4};
  EXPECT_TRUE(ParseRtcp(b.data(), b.size()).has_value());
}

TEST(ParseRtcpTest, CompoundChecksFirstPacket) {
  const Bytes b = Concat(Concat(ReceiverReport(), Sdes()), {0x81, 203, 0, 1, 0x55, 0x66, 0x77, 0x88});
  auto rtcp = ParseRtcp(b.data(), b.size());
  ASSERT_TRUE(rtcp.has_value());
  EXPECT_EQ(rtcp->packet_type, 201);
}

TEST(ParseRtcpTest, SrtcpTrailerAccepted) {
  // E flag + index and a 10-byte auth tag after the compound (RFC 3711).
  Bytes b = Concat(SenderReport(), {0x80, 0, 0, 1});
  b.resize(b.size() + 10, 0xaa);
  EXPECT_TRUE(ParseRtcp(b.data(), b.size()).has_value());
}

TEST(ParseRtcpTest, AllKnownTypes) {
  for (int type = 192; type <= 223; ++type) {
    const Bytes b = {0x80, static_cast<uint8_t>(type), 0, 6, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0,
                     0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    EXPECT_EQ(ParseRtcp(b.data(), b.size()).has_value(), type >= 200 && type <= 207) << type;
  }
}

class ParseRtcpRejectTest : public ::testing::TestWithParam<RejectCase> {};

TEST_P(ParseRtcpRejectTest, Rejects) {
  const Bytes& b = GetParam().packet;
  EXPECT_FALSE(ParseRtcp(b.data(), b.size()).has_value());
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, ParseRtcpRejectTest,
    ::testing::Values(
        RejectCase{"Empty", {}},
        // CVE-2017-14099: a 4-byte RTCP header must never be accepted.
        RejectCase{"FourBytes", {0x80, 201, 0, 0}},
        RejectCase{"LengthZeroWithTrailingBytes", {0x80, 201, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}},
        RejectCase{"SevenBytes", {0x80, 201, 0, 1, 1, 2, 3}},
        RejectCase{"LengthBeyondPacket", {0x80, 201, 0, 2, 1, 2, 3, 4}},
        RejectCase{"LengthMax", {0x80, 201, 0xff, 0xff, 1, 2, 3, 4}},
        RejectCase{"Version1", {0x40, 201, 0, 1, 1, 2, 3, 4}},
        RejectCase{"Version0", {0x00, 201, 0, 1, 1, 2, 3, 4}},
        RejectCase{"Type199", {0x80, 199, 0, 1, 1, 2, 3, 4}},
        RejectCase{"Type208", {0x80, 208, 0, 1, 1, 2, 3, 4}},
        RejectCase{"Rtp", Rtp()},
        RejectCase{"SenderReportTooShort", {0x80, 200, 0, 1, 1, 2, 3, 4}},
        RejectCase{"ReportBlockBeyondLength", {0x81, 201, 0, 1, 1, 2, 3, 4}},
        RejectCase{"SenderReportBlockBeyondLength", Concat({0x81}, Bytes{200, 0, 6, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0,
                                                                         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                                         0, 0})}),
    [](const ::testing::TestParamInfo<RejectCase>& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Classify

Bytes Stun(uint32_t cookie = 0x2112A442, size_t size = 20) {
  Bytes b = {0x00, 0x01, 0x00, 0x00, static_cast<uint8_t>(cookie >> 24), static_cast<uint8_t>(cookie >> 16),
             static_cast<uint8_t>(cookie >> 8), static_cast<uint8_t>(cookie)};
  b.resize(size, 0x42);
  return b;
}

struct ClassifyCase {
  std::string name;
  Bytes packet;
  PacketKind kind;
};

void PrintTo(const ClassifyCase& c, std::ostream* os) { *os << c.name; }

class ClassifyTest : public ::testing::TestWithParam<ClassifyCase> {};

TEST_P(ClassifyTest, Demultiplexes) {
  const Bytes& b = GetParam().packet;
  EXPECT_EQ(Classify(b.data(), b.size()), GetParam().kind);
}

INSTANTIATE_TEST_SUITE_P(
    Rfc7983, ClassifyTest,
    ::testing::Values(
        ClassifyCase{"Rtp", Rtp(), PacketKind::kRtp},
        ClassifyCase{"RtpMarker", Rtp(0x80, 0x80 | 96), PacketKind::kRtp},
        ClassifyCase{"RtpTwelveBytes", Rtp(0x80, 0, 0), PacketKind::kRtp},
        ClassifyCase{"RtpElevenBytes", Bytes(11, 0x80), PacketKind::kInvalid},
        ClassifyCase{"RtcpSr", SenderReport(), PacketKind::kRtcp},
        ClassifyCase{"RtcpRrCompound", Concat(ReceiverReport(), Sdes()), PacketKind::kRtcp},
        ClassifyCase{"RtcpFourBytes", {0x80, 201, 0, 0}, PacketKind::kInvalid},
        ClassifyCase{"StunBindingRequest", Stun(), PacketKind::kStun},
        ClassifyCase{"StunBadCookie", Stun(0x2112A443), PacketKind::kInvalid},
        ClassifyCase{"StunShort", Stun(0x2112A442, 19), PacketKind::kInvalid},
        ClassifyCase{"Zrtp", Bytes(20, 16), PacketKind::kInvalid},
        ClassifyCase{"DtlsHandshake", Bytes(20, 22), PacketKind::kInvalid},
        ClassifyCase{"TurnChannel", Bytes(20, 0x40), PacketKind::kInvalid},
        ClassifyCase{"Version3", Bytes(20, 0xc0), PacketKind::kInvalid},
        ClassifyCase{"OneByte", {0x80}, PacketKind::kInvalid},
        ClassifyCase{"Empty", {}, PacketKind::kInvalid}),
    [](const ::testing::TestParamInfo<ClassifyCase>& info) { return info.param.name; });

}  // namespace
}  // namespace latchkey::relay
