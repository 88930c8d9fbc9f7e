#include "services/control/sdp/session_description.h"

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/services/control/sdp/sample_sdps.h"

namespace latchkey::control::sdp {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

SessionDescription ParseOrDie(absl::string_view text) {
  absl::StatusOr<SessionDescription> sdp = SessionDescription::Parse(text);
  EXPECT_TRUE(sdp.ok()) << sdp.status();
  if (!sdp.ok()) std::abort();
  return *std::move(sdp);
}

// The error message of parsing `text`, which must fail with INVALID_ARGUMENT.
std::string ParseError(absl::string_view text) {
  absl::StatusOr<SessionDescription> sdp = SessionDescription::Parse(text);
  EXPECT_FALSE(sdp.ok());
  if (sdp.ok()) return "";
  EXPECT_EQ(sdp.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(sdp.status().message());
}

constexpr char kMinimalHead[] =
    "v=0\r\n"
    "o=- 1 1 IN IP4 192.0.2.1\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.1\r\n"
    "t=0 0\r\n";

std::string WithMediaLine(absl::string_view m_line) {
  return absl::StrCat(kMinimalHead, m_line, "\r\na=rtpmap:0 PCMU/8000\r\n");
}

TEST(SessionDescriptionTest, ParsesYealinkOffer) {
  const SessionDescription sdp = ParseOrDie(samples::kYealinkOffer);
  EXPECT_EQ(sdp.origin().username, "-");
  EXPECT_EQ(sdp.origin().session_id, "20045");
  EXPECT_EQ(sdp.origin().session_version, "20045");
  EXPECT_EQ(sdp.origin().network_type, "IN");
  EXPECT_EQ(sdp.origin().address_type, "IP4");
  EXPECT_EQ(sdp.origin().address, "192.168.1.101");
  EXPECT_EQ(sdp.origin().line, 1u);
  ASSERT_TRUE(sdp.session_connection().has_value());
  EXPECT_EQ(sdp.session_connection()->address, "192.168.1.101");
  EXPECT_EQ(sdp.session_connection()->family, IpFamily::kIpv4);
  EXPECT_FALSE(sdp.session_connection()->is_zero_address);
  EXPECT_EQ(sdp.line_ending(), LineEnding::kCrlf);
  EXPECT_TRUE(sdp.has_final_terminator());
  EXPECT_EQ(sdp.lines().size(), 15u);
  EXPECT_EQ(sdp.session_end_line(), 5u);

  ASSERT_EQ(sdp.media().size(), 1u);
  const MediaDescription& audio = sdp.media()[0];
  EXPECT_EQ(audio.index, 0u);
  EXPECT_EQ(audio.media_type, "audio");
  EXPECT_EQ(audio.port, 11780);
  EXPECT_EQ(audio.port_count, 1u);
  EXPECT_EQ(audio.proto, "RTP/AVP");
  EXPECT_EQ(audio.formats, "9 0 8 18 101");
  EXPECT_FALSE(audio.connection.has_value());
  EXPECT_FALSE(audio.rtcp.has_value());
  EXPECT_FALSE(audio.rtcp_mux);
  EXPECT_FALSE(audio.has_ice_attributes);
  EXPECT_FALSE(audio.mid.has_value());
  EXPECT_EQ(audio.direction, Direction::kSendRecv);
  EXPECT_EQ(audio.first_line, 5u);
  EXPECT_EQ(audio.end_line, 15u);

  EXPECT_EQ(sdp.EffectiveConnection(0), &*sdp.session_connection());
  EXPECT_EQ(sdp.EffectiveDirection(0), Direction::kSendRecv);
  EXPECT_EQ(sdp.RtpAddress(0), (TransportAddress{"192.168.1.101", 11780}));
  EXPECT_EQ(sdp.RtcpAddress(0), (TransportAddress{"192.168.1.101", 11781}));
  EXPECT_THAT(sdp.ConnectionAddresses(), ElementsAre("192.168.1.101"));
  EXPECT_FALSE(sdp.UsesIce(0));
}

TEST(SessionDescriptionTest, KeepsEveryLineVerbatim) {
  const SessionDescription sdp = ParseOrDie(samples::kPolycomSrtpOffer);
  std::string joined;
  for (const SdpLine& line : sdp.lines()) absl::StrAppend(&joined, line.text, line.terminator);
  EXPECT_EQ(joined, samples::kPolycomSrtpOffer);
  EXPECT_EQ(sdp.lines()[7].type, 'a');
  EXPECT_EQ(sdp.lines()[7].text,
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
            "inline:Q2hhbmdlIHRoaXMga2V5IGJlZm9yZSBzaGlwcGluZyE=|2^31");
}

TEST(SessionDescriptionTest, SessionLevelDirectionAppliesToMediaWithoutOwn) {
  const SessionDescription sdp = ParseOrDie(samples::kPolycomSrtpOffer);
  EXPECT_EQ(sdp.session_direction(), Direction::kSendRecv);
  EXPECT_EQ(sdp.media()[0].direction, Direction::kUnspecified);
  EXPECT_EQ(sdp.DeclaredDirection(0), Direction::kSendRecv);
  EXPECT_EQ(sdp.media()[0].proto, "RTP/SAVP");
}

TEST(SessionDescriptionTest, MediaDirectionOverridesSessionDirection) {
  const SessionDescription sdp = ParseOrDie(absl::StrCat(
      kMinimalHead, "a=sendonly\r\nm=audio 4000 RTP/AVP 0\r\na=recvonly\r\nm=audio 4002 RTP/AVP 0\r\n"));
  EXPECT_EQ(sdp.DeclaredDirection(0), Direction::kRecvOnly);
  EXPECT_EQ(sdp.DeclaredDirection(1), Direction::kSendOnly);
  EXPECT_EQ(sdp.EffectiveDirection(1), Direction::kSendOnly);
}

TEST(SessionDescriptionTest, NoDirectionMeansSendRecv) {
  const SessionDescription sdp = ParseOrDie(samples::kMediaLevelConnectionOnly);
  EXPECT_EQ(sdp.DeclaredDirection(0), Direction::kUnspecified);
  EXPECT_EQ(sdp.EffectiveDirection(0), Direction::kSendRecv);
}

TEST(SessionDescriptionTest, HoldReinviteIsSendOnly) {
  const SessionDescription sdp = ParseOrDie(samples::kYealinkHoldReinvite);
  EXPECT_EQ(sdp.origin().session_version, "20046");
  EXPECT_EQ(sdp.media()[0].direction, Direction::kSendOnly);
  EXPECT_EQ(sdp.EffectiveDirection(0), Direction::kSendOnly);
  EXPECT_FALSE(sdp.IsZeroAddressHold(0));
}

TEST(SessionDescriptionTest, ZeroAddressIsReportedAsHold) {
  const SessionDescription sdp = ParseOrDie(samples::kZeroAddressHold);
  ASSERT_TRUE(sdp.session_connection().has_value());
  EXPECT_TRUE(sdp.session_connection()->is_zero_address);
  ASSERT_TRUE(sdp.media()[0].connection.has_value());
  EXPECT_TRUE(sdp.media()[0].connection->is_zero_address);
  EXPECT_TRUE(sdp.IsZeroAddressHold(0));
  EXPECT_FALSE(sdp.IsIcePlaceholder(0));
  EXPECT_EQ(sdp.DeclaredDirection(0), Direction::kUnspecified);
  EXPECT_EQ(sdp.EffectiveDirection(0), Direction::kSendOnly);
  // 0.0.0.0 is not where the endpoint is, so NAT detection must not see it.
  EXPECT_THAT(sdp.ConnectionAddresses(), IsEmpty());
}

TEST(SessionDescriptionTest, ZeroAddressWithRecvOnlyIsInactive) {
  const SessionDescription sdp = ParseOrDie(
      "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
      "m=audio 4000 RTP/AVP 0\r\na=recvonly\r\n");
  EXPECT_TRUE(sdp.IsZeroAddressHold(0));
  EXPECT_EQ(sdp.EffectiveDirection(0), Direction::kInactive);
}

TEST(SessionDescriptionTest, Ipv6ZeroAddressIsHoldToo) {
  const SessionDescription sdp = ParseOrDie(
      "v=0\r\no=- 1 2 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 ::\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n");
  EXPECT_EQ(sdp.session_connection()->family, IpFamily::kIpv6);
  EXPECT_TRUE(sdp.IsZeroAddressHold(0));
}

TEST(SessionDescriptionTest, ZeroAddressOnPortNineIsAnIcePlaceholderNotHold) {
  const SessionDescription sdp = ParseOrDie(
      "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
      "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\n"
      "a=ice-pwd:0123456789abcdefghijklmn\r\na=sendrecv\r\n");
  EXPECT_TRUE(sdp.IsIcePlaceholder(0));
  EXPECT_FALSE(sdp.IsZeroAddressHold(0));
  EXPECT_EQ(sdp.EffectiveDirection(0), Direction::kSendRecv);
}

TEST(SessionDescriptionTest, LinphoneIceAndRtcpMux) {
  const SessionDescription sdp = ParseOrDie(samples::kLinphoneIceOffer);
  EXPECT_EQ(sdp.origin().username, "alice");
  EXPECT_TRUE(sdp.session_has_ice_attributes());
  const MediaDescription& audio = sdp.media()[0];
  EXPECT_TRUE(audio.has_ice_attributes);
  EXPECT_TRUE(audio.rtcp_mux);
  ASSERT_TRUE(audio.rtcp.has_value());
  EXPECT_EQ(audio.rtcp->port, 7079);
  EXPECT_FALSE(audio.rtcp->connection.has_value());
  EXPECT_TRUE(sdp.UsesIce(0));
  EXPECT_EQ(sdp.RtcpAddress(0), (TransportAddress{"192.168.1.23", 7079}));
}

TEST(SessionDescriptionTest, SessionLevelIceAloneCountsForEveryMedia) {
  const SessionDescription sdp =
      ParseOrDie(absl::StrCat(kMinimalHead, "a=ice-lite\r\nm=audio 4000 RTP/AVP 0\r\n"));
  EXPECT_FALSE(sdp.media()[0].has_ice_attributes);
  EXPECT_TRUE(sdp.UsesIce(0));
}

TEST(SessionDescriptionTest, ChromeWebrtcOffer) {
  const SessionDescription sdp = ParseOrDie(samples::kChromeWebrtcOffer);
  EXPECT_FALSE(sdp.session_connection().has_value());
  EXPECT_EQ(sdp.origin().session_id, "4611731400430051336");
  ASSERT_EQ(sdp.media().size(), 2u);
  const MediaDescription& audio = sdp.media()[0];
  const MediaDescription& video = sdp.media()[1];
  EXPECT_EQ(audio.proto, "UDP/TLS/RTP/SAVPF");
  EXPECT_EQ(audio.mid, "0");
  EXPECT_EQ(video.mid, "1");
  EXPECT_EQ(video.media_type, "video");
  EXPECT_TRUE(audio.rtcp_mux);
  EXPECT_TRUE(video.rtcp_mux);
  EXPECT_TRUE(audio.has_ice_attributes);
  EXPECT_FALSE(sdp.session_has_ice_attributes());
  ASSERT_TRUE(audio.rtcp.has_value());
  ASSERT_TRUE(audio.rtcp->connection.has_value());
  EXPECT_TRUE(audio.rtcp->connection->is_zero_address);
  EXPECT_EQ(sdp.RtcpAddress(0), (TransportAddress{"0.0.0.0", 9}));
  EXPECT_EQ(sdp.EffectiveConnection(1)->address, "198.51.100.77");
  EXPECT_EQ(sdp.EffectiveConnection(1)->line, video.connection->line);
  EXPECT_EQ(sdp.media()[0].end_line, sdp.media()[1].first_line);
  EXPECT_EQ(sdp.media()[1].end_line, sdp.lines().size());
  EXPECT_THAT(sdp.ConnectionAddresses(), ElementsAre("198.51.100.77"));
  EXPECT_EQ(audio.ssrc, 3735928559u);
  EXPECT_EQ(video.ssrc, 2882400001u);
}

TEST(SessionDescriptionTest, FreeswitchRtcpWithAddress) {
  const SessionDescription sdp = ParseOrDie(samples::kFreeswitchAnswer);
  const MediaDescription& audio = sdp.media()[0];
  ASSERT_TRUE(audio.rtcp.has_value());
  EXPECT_EQ(audio.rtcp->port, 24579);
  ASSERT_TRUE(audio.rtcp->connection.has_value());
  EXPECT_EQ(audio.rtcp->connection->address, "198.51.100.7");
  EXPECT_EQ(audio.rtcp->line, 11u);
  EXPECT_EQ(sdp.RtcpAddress(0), (TransportAddress{"198.51.100.7", 24579}));
}

TEST(SessionDescriptionTest, RtcpAddressFromAttributeCountsAsConnectionAddress) {
  const SessionDescription sdp = ParseOrDie(absl::StrCat(
      kMinimalHead, "m=audio 4000 RTP/AVP 0\r\na=rtcp:4001 IN IP4 10.1.1.1\r\n",
      "m=video 4002 RTP/AVP 96\r\nc=IN IP4 10.2.2.2\r\n", "m=audio 4004 RTP/AVP 0\r\n"));
  EXPECT_THAT(sdp.ConnectionAddresses(), ElementsAre("192.0.2.1", "10.1.1.1", "10.2.2.2"));
}

TEST(SessionDescriptionTest, AudioAndVideo) {
  const SessionDescription sdp = ParseOrDie(samples::kAudioVideoOffer);
  ASSERT_EQ(sdp.media().size(), 2u);
  EXPECT_EQ(sdp.media()[1].port, 11798);
  EXPECT_EQ(sdp.media()[1].formats, "99");
  EXPECT_EQ(sdp.RtpAddress(1), (TransportAddress{"192.168.1.80", 11798}));
  EXPECT_THAT(sdp.ConnectionAddresses(), ElementsAre("192.168.1.80"));
}

TEST(SessionDescriptionTest, RejectedStreamIsInactiveAndNotAnAddressInUse) {
  const SessionDescription sdp = ParseOrDie(samples::kRejectedVideoAnswer);
  ASSERT_EQ(sdp.media().size(), 2u);
  EXPECT_EQ(sdp.media()[1].port, 0);
  EXPECT_EQ(sdp.EffectiveDirection(1), Direction::kInactive);
  EXPECT_EQ(sdp.RtpAddress(1), (TransportAddress{"203.0.113.50", 0}));
  EXPECT_EQ(sdp.RtcpAddress(1), (TransportAddress{"203.0.113.50", 0}));

  const SessionDescription only_rejected = ParseOrDie(absl::StrCat(
      "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n",
      "c=IN IP4 10.9.9.9\r\n"));
  EXPECT_THAT(only_rejected.ConnectionAddresses(), IsEmpty());
}

TEST(SessionDescriptionTest, Ipv6Phone) {
  const SessionDescription sdp = ParseOrDie(samples::kIpv6Offer);
  EXPECT_EQ(sdp.origin().address_type, "IP6");
  EXPECT_EQ(sdp.session_connection()->family, IpFamily::kIpv6);
  EXPECT_EQ(sdp.RtpAddress(0), (TransportAddress{"2001:db8:85a3::8a2e:370:7334", 63874}));
}

TEST(SessionDescriptionTest, MediaLevelConnectionOnly) {
  const SessionDescription sdp = ParseOrDie(samples::kMediaLevelConnectionOnly);
  EXPECT_FALSE(sdp.session_connection().has_value());
  ASSERT_TRUE(sdp.media()[0].connection.has_value());
  EXPECT_EQ(sdp.EffectiveConnection(0)->address, "192.0.2.33");
}

TEST(SessionDescriptionTest, MediaLevelConnectionOverridesSessionLevel) {
  const SessionDescription sdp = ParseOrDie(
      absl::StrCat(kMinimalHead, "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 10.0.0.7\r\n"));
  EXPECT_EQ(sdp.EffectiveConnection(0)->address, "10.0.0.7");
  EXPECT_THAT(sdp.ConnectionAddresses(), ElementsAre("10.0.0.7"));
}

TEST(SessionDescriptionTest, NoConnectionAnywhereIsAccepted) {
  const SessionDescription sdp = ParseOrDie(samples::kNoConnectionWithInfo);
  EXPECT_EQ(sdp.EffectiveConnection(0), nullptr);
  EXPECT_EQ(sdp.RtpAddress(0), std::nullopt);
  EXPECT_EQ(sdp.RtcpAddress(0), std::nullopt);
}

TEST(SessionDescriptionTest, LfOnlyWithoutFinalTerminator) {
  const SessionDescription sdp = ParseOrDie(samples::kLfOnlyOffer);
  EXPECT_EQ(sdp.line_ending(), LineEnding::kLf);
  EXPECT_FALSE(sdp.has_final_terminator());
  EXPECT_EQ(sdp.lines().back().text, "a=sendrecv");
  EXPECT_EQ(sdp.lines().back().terminator, "");
  EXPECT_EQ(sdp.media()[0].port, 5000);
}

TEST(SessionDescriptionTest, ToleratesTrailingEmptyLine) {
  const SessionDescription sdp = ParseOrDie(absl::StrCat(samples::kAsteriskOffer, "\r\n"));
  EXPECT_EQ(sdp.trailing_blank_lines(), "\r\n");
  EXPECT_EQ(sdp.lines().back().text, "a=sendrecv");
  EXPECT_TRUE(sdp.has_final_terminator());
}

TEST(SessionDescriptionTest, AcceptsZeroMediaLines) {
  const SessionDescription sdp = ParseOrDie(kMinimalHead);
  EXPECT_THAT(sdp.media(), IsEmpty());
  EXPECT_EQ(sdp.session_end_line(), 5u);
  EXPECT_EQ(sdp.EffectiveConnection(0), nullptr);
  EXPECT_EQ(sdp.EffectiveDirection(0), Direction::kUnspecified);
}

TEST(SessionDescriptionTest, PortCountAndRunsOfBlanks) {
  const SessionDescription sdp = ParseOrDie(WithMediaLine("m=video  49170/2\tRTP/AVP  31 32 "));
  EXPECT_EQ(sdp.media()[0].port, 49170);
  EXPECT_EQ(sdp.media()[0].port_count, 2u);
  EXPECT_EQ(sdp.media()[0].proto, "RTP/AVP");
  EXPECT_EQ(sdp.media()[0].formats, "31 32");
}

TEST(SessionDescriptionTest, RejectedStreamMayOmitFormats) {
  const SessionDescription sdp = ParseOrDie(WithMediaLine("m=video 0 RTP/AVP"));
  EXPECT_EQ(sdp.media()[0].formats, "");
}

TEST(SessionDescriptionTest, OriginUsernameWithSpaces) {
  const SessionDescription sdp = ParseOrDie(
      "v=0\r\no=Sip Phone 1 123 456 IN IP4 192.0.2.8\r\ns=-\r\nt=0 0\r\n");
  EXPECT_EQ(sdp.origin().username, "Sip Phone 1");
  EXPECT_EQ(sdp.origin().session_id, "123");
  EXPECT_EQ(sdp.origin().address, "192.0.2.8");
}

TEST(SessionDescriptionTest, ConnectionWithMulticastSuffix) {
  const SessionDescription sdp = ParseOrDie(
      "v=0\r\no=- 1 1 IN IP4 192.0.2.8\r\ns=-\r\nc=IN IP4 233.252.0.1/127/3\r\nt=0 0\r\n");
  EXPECT_EQ(sdp.session_connection()->address, "233.252.0.1");
}

TEST(SessionDescriptionTest, AllSamplesParse) {
  for (const char* text :
       {samples::kYealinkOffer, samples::kYealinkHoldReinvite, samples::kPolycomSrtpOffer,
        samples::kGrandstreamOffer, samples::kLinphoneIceOffer, samples::kZoiperOffer,
        samples::kCiscoSpaOffer, samples::kAsteriskOffer, samples::kFreeswitchAnswer,
        samples::kChromeWebrtcOffer, samples::kAudioVideoOffer, samples::kRejectedVideoAnswer,
        samples::kIpv6Offer, samples::kZeroAddressHold, samples::kMediaLevelConnectionOnly,
        samples::kLfOnlyOffer, samples::kNoConnectionWithInfo}) {
    EXPECT_TRUE(SessionDescription::Parse(text).ok()) << text;
  }
}

// ---- Errors: each says what is wrong and where ----

TEST(SessionDescriptionTest, FirstSsrcOfEachMediaSection) {
  const SessionDescription sdp = ParseOrDie(absl::StrCat(
      kMinimalHead, "a=ssrc:99 cname:session-level-means-nothing\r\n",
      "m=audio 4000 RTP/AVP 0\r\na=ssrc:3735928559 cname:phone\r\na=ssrc:3735928559 msid:a b\r\n",
      "m=video 4002 RTP/AVP 96\r\na=ssrc-group:FID 11 12\r\na=ssrc:11 cname:phone\r\na=ssrc:12 cname:phone\r\n",
      "m=audio 4004 RTP/AVP 0\r\n"));
  ASSERT_EQ(sdp.media().size(), 3u);
  EXPECT_EQ(sdp.media()[0].ssrc, 3735928559u);
  EXPECT_EQ(sdp.media()[1].ssrc, 11u) << "the primary stream, not the retransmission";
  EXPECT_FALSE(sdp.media()[2].ssrc.has_value());
}

TEST(SessionDescriptionErrorTest, SsrcOutOfRange) {
  for (const char* bad : {"a=ssrc:4294967296 cname:x", "a=ssrc:-1 cname:x", "a=ssrc:abc cname:x", "a=ssrc: cname:x"}) {
    EXPECT_THAT(ParseError(absl::StrCat(kMinimalHead, "m=audio 4000 RTP/AVP 0\r\n", bad, "\r\n")),
                HasSubstr("SDP line 7"))
        << bad;
  }
}

TEST(SessionDescriptionErrorTest, Empty) {
  EXPECT_THAT(ParseError(""), HasSubstr("empty"));
  EXPECT_THAT(ParseError("\r\n\r\n"), HasSubstr("only empty lines"));
}

TEST(SessionDescriptionErrorTest, FirstLineMustBeVersionZero) {
  EXPECT_EQ(ParseError("o=- 1 1 IN IP4 192.0.2.1\r\nv=0\r\n"),
            "SDP line 1 \"o=- 1 1 IN IP4 192.0.2.1\": an SDP must start with v=0");
  EXPECT_THAT(ParseError("v=1\r\no=- 1 1 IN IP4 192.0.2.1\r\n"), HasSubstr("must start with v=0"));
}

TEST(SessionDescriptionErrorTest, NotATypeEqualsValueLine) {
  EXPECT_EQ(ParseError(absl::StrCat(kMinimalHead, "m=audio 4000 RTP/AVP 0\r\nhello world\r\n")),
            "SDP line 7 \"hello world\": expected <letter>=<value>");
  EXPECT_THAT(ParseError(absl::StrCat(kMinimalHead, "1=x\r\n")), HasSubstr("SDP line 6"));
  EXPECT_THAT(ParseError("v=0\r\n<html>\r\n"), HasSubstr("SDP line 2 \"<html>\""));
}

TEST(SessionDescriptionErrorTest, EmptyLineInTheMiddle) {
  EXPECT_EQ(ParseError("v=0\r\n\r\no=- 1 1 IN IP4 192.0.2.1\r\n"),
            "SDP line 2 \"\": empty line inside the SDP");
}

TEST(SessionDescriptionErrorTest, BareCarriageReturn) {
  EXPECT_THAT(ParseError("v=0\ro=- 1 1 IN IP4 192.0.2.1\r\n"),
              HasSubstr("SDP line 1 \"v=0\\ro=- 1 1 IN IP4 192.0.2.1\": carriage return"));
}

TEST(SessionDescriptionErrorTest, MissingOrigin) {
  EXPECT_EQ(ParseError("v=0\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"), "SDP has no o= line");
}

TEST(SessionDescriptionErrorTest, BadOrigin) {
  EXPECT_THAT(ParseError("v=0\r\no=- 1 IN IP4 192.0.2.1\r\n"),
              HasSubstr("SDP line 2 \"o=- 1 IN IP4 192.0.2.1\": expected"));
  EXPECT_THAT(ParseError(absl::StrCat(kMinimalHead, "o=- 2 2 IN IP4 192.0.2.1\r\n")),
              HasSubstr("SDP line 6 \"o=- 2 2 IN IP4 192.0.2.1\": second o= line"));
  EXPECT_THAT(ParseError(absl::StrCat(kMinimalHead, "m=audio 4000 RTP/AVP 0\r\no=- 2 2 IN IP4 1.2.3.4\r\n")),
              HasSubstr("o= must come before the first m= line"));
}

TEST(SessionDescriptionErrorTest, TooManyMediaLines) {
  std::string text = kMinimalHead;
  for (int i = 0; i < 64; ++i) absl::StrAppend(&text, "m=audio ", 4000 + 2 * i, " RTP/AVP 0\r\n");
  EXPECT_TRUE(SessionDescription::Parse(text).ok());
  absl::StrAppend(&text, "m=audio 6000 RTP/AVP 0\r\n");
  EXPECT_EQ(ParseError(text), "SDP line 70 \"m=audio 6000 RTP/AVP 0\": more than 64 m= lines");
}

TEST(SessionDescriptionErrorTest, TooLarge) {
  std::string text = kMinimalHead;
  while (text.size() <= kMaxSdpBytes) absl::StrAppend(&text, "a=x-filler:0123456789abcdef\r\n");
  EXPECT_THAT(ParseError(text), HasSubstr("the limit is 65536"));
}

TEST(SessionDescriptionErrorTest, NulByte) {
  std::string text = samples::kYealinkOffer;
  text[text.find("PCMU")] = '\0';
  EXPECT_THAT(ParseError(text), HasSubstr("NUL byte at offset"));
  EXPECT_THAT(ParseError(text), HasSubstr("(line 8)"));
}

TEST(SessionDescriptionErrorTest, MalformedMediaLine) {
  EXPECT_EQ(ParseError(WithMediaLine("m=audio abc RTP/AVP 0")),
            "SDP line 6 \"m=audio abc RTP/AVP 0\": port \"abc\" is not a number 0-65535");
  EXPECT_THAT(ParseError(WithMediaLine("m=audio 65536 RTP/AVP 0")),
              HasSubstr("port \"65536\" is not a number 0-65535"));
  EXPECT_THAT(ParseError(WithMediaLine("m=audio -1 RTP/AVP 0")), HasSubstr("port \"-1\""));
  EXPECT_THAT(ParseError(WithMediaLine("m=audio 4000/0 RTP/AVP 0")), HasSubstr("port count \"0\""));
  EXPECT_THAT(ParseError(WithMediaLine("m=audio 4000")), HasSubstr("expected \"<media> <port>"));
  EXPECT_THAT(ParseError(WithMediaLine("m=audio 4000 RTP/AVP")),
              HasSubstr("no media formats after the transport protocol"));
}

TEST(SessionDescriptionErrorTest, MalformedConnection) {
  auto with_connection = [](absl::string_view c_line) {
    return absl::StrCat("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n", c_line, "\r\nt=0 0\r\n");
  };
  EXPECT_EQ(ParseError(with_connection("c=IN IP4 pbx.example.com")),
            "SDP line 4 \"c=IN IP4 pbx.example.com\": host name \"pbx.example.com\" is not "
            "supported: the relay needs an IP address");
  EXPECT_THAT(ParseError(with_connection("c=IN IP4 2001:db8::1")),
              HasSubstr("\"2001:db8::1\" is an IPv6 address but the line says IP4"));
  EXPECT_THAT(ParseError(with_connection("c=IN IP6 192.0.2.1")),
              HasSubstr("\"192.0.2.1\" is an IPv4 address but the line says IP6"));
  EXPECT_THAT(ParseError(with_connection("c=IN IP4 192.0.2.300")),
              HasSubstr("\"192.0.2.300\" is not an IPv4 address"));
  EXPECT_THAT(ParseError(with_connection("c=ATM NSAP 47.0005.80.ffe100")),
              HasSubstr("network type \"ATM\" is not IN"));
  EXPECT_THAT(ParseError(with_connection("c=IN IPX 192.0.2.1")),
              HasSubstr("address type \"IPX\" is neither IP4 nor IP6"));
  EXPECT_THAT(ParseError(with_connection("c=IN IP4")), HasSubstr("got 2 field(s)"));
  EXPECT_THAT(ParseError(with_connection("c=IN IP4 233.252.0.1/x")),
              HasSubstr("address suffix \"x\""));
  EXPECT_THAT(ParseError(with_connection("c=IN IP4 [192.0.2.1]")), HasSubstr("not an IPv4 address"));
}

TEST(SessionDescriptionErrorTest, SecondConnectionInASection) {
  EXPECT_THAT(ParseError(absl::StrCat(kMinimalHead, "c=IN IP4 192.0.2.2\r\n")),
              HasSubstr("SDP line 6 \"c=IN IP4 192.0.2.2\": second c= line in the session section"));
  EXPECT_THAT(ParseError(absl::StrCat(kMinimalHead, "m=audio 1 RTP/AVP 0\r\nm=audio 2 RTP/AVP 0\r\n",
                                      "c=IN IP4 10.0.0.1\r\nc=IN IP4 10.0.0.2\r\n")),
              HasSubstr("second c= line in media section 1"));
}

TEST(SessionDescriptionErrorTest, MalformedRtcpAttribute) {
  EXPECT_EQ(ParseError(absl::StrCat(WithMediaLine("m=audio 4000 RTP/AVP 0"), "a=rtcp:70000\r\n")),
            "SDP line 8 \"a=rtcp:70000\": RTCP port \"70000\" is not a number 0-65535");
  EXPECT_THAT(ParseError(absl::StrCat(WithMediaLine("m=audio 4000 RTP/AVP 0"), "a=rtcp:4001 IN IP4\r\n")),
              HasSubstr("expected \"a=rtcp:<port> [IN IP4|IP6 <address>]\""));
  EXPECT_THAT(ParseError(absl::StrCat(WithMediaLine("m=audio 4000 RTP/AVP 0"),
                                      "a=rtcp:4001 IN IP4 media.example.net\r\n")),
              HasSubstr("host name \"media.example.net\""));
  EXPECT_THAT(ParseError(absl::StrCat(WithMediaLine("m=audio 4000 RTP/AVP 0"),
                                      "a=rtcp:4001\r\na=rtcp:4003\r\n")),
              HasSubstr("second a=rtcp line"));
}

TEST(SessionDescriptionErrorTest, ConflictingDirections) {
  EXPECT_EQ(ParseError(absl::StrCat(WithMediaLine("m=audio 4000 RTP/AVP 0"),
                                    "a=sendrecv\r\na=sendonly\r\n")),
            "SDP line 9 \"a=sendonly\": conflicts with the earlier a=sendrecv");
  // Repeating the same direction is harmless.
  EXPECT_TRUE(SessionDescription::Parse(absl::StrCat(WithMediaLine("m=audio 4000 RTP/AVP 0"),
                                                     "a=sendonly\r\na=sendonly\r\n"))
                  .ok());
}

TEST(SessionDescriptionErrorTest, SecondVersionLine) {
  EXPECT_THAT(ParseError(absl::StrCat(kMinimalHead, "v=0\r\n")),
              HasSubstr("SDP line 6 \"v=0\": v= may only be the first line"));
}

TEST(SessionDescriptionErrorTest, ExcerptIsBoundedAndEscaped) {
  const std::string long_line = absl::StrCat("m=audio ", std::string(5000, '9'), " RTP/AVP 0");
  const std::string message = ParseError(WithMediaLine(long_line));
  EXPECT_LT(message.size(), 200u);
  EXPECT_THAT(message, HasSubstr("SDP line 6 \"m=audio 9999"));
  EXPECT_THAT(message, HasSubstr("...\""));
  EXPECT_THAT(ParseError(absl::StrCat(kMinimalHead, "\x01\x7f=x\r\n")), HasSubstr("\"\\x01\\x7f=x\""));
}

}  // namespace
}  // namespace latchkey::control::sdp
