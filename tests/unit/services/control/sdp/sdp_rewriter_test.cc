#include "services/control/sdp/sdp_rewriter.h"

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/control/sdp/session_description.h"
#include "tests/unit/services/control/sdp/sample_sdps.h"

namespace latchkey::control::sdp {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kRelay[] = "203.0.113.10";

SessionDescription ParseOrDie(absl::string_view text) {
  absl::StatusOr<SessionDescription> sdp = SessionDescription::Parse(text);
  EXPECT_TRUE(sdp.ok()) << sdp.status();
  if (!sdp.ok()) std::abort();
  return *std::move(sdp);
}

// Relay ports 40000 + 2i (RTCP + 1) for every active stream, as a placement would hand them out.
RewriteOptions TargetsForActiveStreams(const SessionDescription& sdp, std::string relay_ip = kRelay) {
  RewriteOptions options;
  options.relay_ip = std::move(relay_ip);
  for (const MediaDescription& media : sdp.media()) {
    if (media.port == 0) continue;
    const auto rtp = static_cast<uint16_t>(40000 + 2 * media.index);
    options.streams.push_back({static_cast<uint32_t>(media.index), "", rtp, static_cast<uint16_t>(rtp + 1)});
  }
  return options;
}

std::string RewriteOrDie(absl::string_view text, const RewriteOptions& options) {
  const SessionDescription sdp = ParseOrDie(text);
  absl::StatusOr<std::string> rewritten = Rewrite(sdp, options);
  EXPECT_TRUE(rewritten.ok()) << rewritten.status();
  if (!rewritten.ok()) std::abort();
  return *std::move(rewritten);
}

std::string RewriteWithDefaults(absl::string_view text) {
  return RewriteOrDie(text, TargetsForActiveStreams(ParseOrDie(text)));
}

std::string RewriteError(absl::string_view text, const RewriteOptions& options) {
  const SessionDescription sdp = ParseOrDie(text);
  absl::StatusOr<std::string> rewritten = Rewrite(sdp, options);
  EXPECT_FALSE(rewritten.ok());
  if (rewritten.ok()) return "";
  EXPECT_EQ(rewritten.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(rewritten.status().message());
}

// Compares line by line (terminators included): every line equal to the input's except the listed
// 0-based ones, which must read as given.
void ExpectLinesEqualExcept(absl::string_view input, absl::string_view output,
                            const std::map<size_t, std::string>& changed) {
  const std::vector<std::string> in = absl::StrSplit(input, '\n');
  const std::vector<std::string> out = absl::StrSplit(output, '\n');
  ASSERT_EQ(in.size(), out.size()) << output;
  for (size_t i = 0; i < in.size(); ++i) {
    const auto it = changed.find(i);
    if (it == changed.end()) {
      EXPECT_EQ(out[i], in[i]) << "line " << i + 1 << " should be untouched";
    } else {
      const bool crlf = absl::EndsWith(in[i], "\r");
      EXPECT_EQ(out[i], absl::StrCat(it->second, crlf ? "\r" : "")) << "line " << i + 1;
    }
  }
}

TEST(SdpRewriterTest, YealinkOfferExactOutput) {
  EXPECT_EQ(RewriteWithDefaults(samples::kYealinkOffer),
            "v=0\r\n"
            "o=- 20045 20045 IN IP4 192.168.1.101\r\n"
            "s=SDP data\r\n"
            "c=IN IP4 203.0.113.10\r\n"
            "t=0 0\r\n"
            "m=audio 40000 RTP/AVP 9 0 8 18 101\r\n"
            "a=rtpmap:9 G722/8000\r\n"
            "a=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:8 PCMA/8000\r\n"
            "a=rtpmap:18 G729/8000\r\n"
            "a=fmtp:18 annexb=no\r\n"
            "a=ptime:20\r\n"
            "a=sendrecv\r\n"
            "a=rtpmap:101 telephone-event/8000\r\n"
            "a=fmtp:101 0-15\r\n");
}

TEST(SdpRewriterTest, OnlyAddressAndPortLinesChange) {
  struct Case {
    const char* text;
    std::map<size_t, std::string> changed;
  };
  const Case cases[] = {
      {samples::kPolycomSrtpOffer,
       {{3, "c=IN IP4 203.0.113.10"}, {6, "m=audio 40000 RTP/SAVP 9 0 8 18 127"}}},
      {samples::kGrandstreamOffer,
       {{3, "c=IN IP4 203.0.113.10"}, {5, "m=audio 40000 RTP/AVP 0 8 4 18 9 97 2 123 101"}}},
      {samples::kCiscoSpaOffer,
       {{3, "c=IN IP4 203.0.113.10"}, {5, "m=audio 40000 RTP/AVP 0 2 8 18 101"}}},
      {samples::kAsteriskOffer,
       {{3, "c=IN IP4 203.0.113.10"}, {5, "m=audio 40000 RTP/AVP 0 8 9 101"}}},
      {samples::kYealinkHoldReinvite,
       {{3, "c=IN IP4 203.0.113.10"}, {5, "m=audio 40000 RTP/AVP 9 101"}}},
      {samples::kAudioVideoOffer,
       {{3, "c=IN IP4 203.0.113.10"},
        {5, "m=audio 40000 RTP/AVP 9 0 8 101"},
        {13, "m=video 40002 RTP/AVP 99"}}},
      {samples::kMediaLevelConnectionOnly,
       {{4, "m=audio 40000 RTP/AVP 8 0 101"}, {5, "c=IN IP4 203.0.113.10"}}},
      {samples::kFreeswitchAnswer,
       {{3, "c=IN IP4 203.0.113.10"},
        {5, "m=audio 40000 RTP/AVP 0 101"},
        {11, "a=rtcp:40001 IN IP4 203.0.113.10"}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    ExpectLinesEqualExcept(c.text, RewriteWithDefaults(c.text), c.changed);
  }
}

TEST(SdpRewriterTest, SrtpAndCodecLinesAreKeptByteForByte) {
  const std::string out = RewriteWithDefaults(samples::kPolycomSrtpOffer);
  EXPECT_THAT(out, HasSubstr("a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
                             "inline:Q2hhbmdlIHRoaXMga2V5IGJlZm9yZSBzaGlwcGluZyE=|2^31\r\n"));
  EXPECT_THAT(out, HasSubstr("\r\na=sendrecv\r\nm=audio"));  // session-level direction untouched
}

TEST(SdpRewriterTest, HoldDirectionIsKept) {
  const std::string out = RewriteWithDefaults(samples::kYealinkHoldReinvite);
  EXPECT_THAT(out, HasSubstr("\r\na=sendonly\r\n"));
  EXPECT_EQ(ParseOrDie(out).EffectiveDirection(0), Direction::kSendOnly);
}

TEST(SdpRewriterTest, LinphoneIceRemoved) {
  EXPECT_EQ(RewriteWithDefaults(samples::kLinphoneIceOffer),
            "v=0\r\n"
            "o=alice 3058 2361 IN IP4 192.168.1.23\r\n"
            "s=Talk\r\n"
            "c=IN IP4 203.0.113.10\r\n"
            "t=0 0\r\n"
            "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\r\n"
            "m=audio 40000 RTP/AVP 96 97 0 8 101\r\n"
            "a=rtpmap:96 opus/48000/2\r\n"
            "a=fmtp:96 useinbandfec=1\r\n"
            "a=rtpmap:97 speex/16000\r\n"
            "a=fmtp:97 vbr=on\r\n"
            "a=rtpmap:101 telephone-event/8000\r\n"
            "a=rtcp:40001\r\n"
            "a=rtcp-mux\r\n"
            "a=rtcp-fb:* trr-int 1000\r\n"
            "a=rtcp-fb:* ccm tmmbr\r\n");
}

TEST(SdpRewriterTest, LinphoneIceKept) {
  RewriteOptions options = TargetsForActiveStreams(ParseOrDie(samples::kLinphoneIceOffer));
  options.remove_ice = false;
  ExpectLinesEqualExcept(samples::kLinphoneIceOffer,
                         RewriteOrDie(samples::kLinphoneIceOffer, options),
                         {{3, "c=IN IP4 203.0.113.10"},
                          {8, "m=audio 40000 RTP/AVP 96 97 0 8 101"},
                          {14, "a=rtcp:40001"}});
}

TEST(SdpRewriterTest, ChromeWebrtcOffer) {
  // rtcp-mux: the caller gives one port per stream for RTP and RTCP.
  RewriteOptions options;
  options.relay_ip = kRelay;
  options.streams = {{0, "", 40000, 40000}, {1, "", 40002, 40002}};
  const std::string out = RewriteOrDie(samples::kChromeWebrtcOffer, options);

  const std::vector<std::string> in_lines = absl::StrSplit(samples::kChromeWebrtcOffer, "\r\n");
  std::vector<std::string> expected;
  int relay_port = 0;  // of the m= section being copied
  for (const std::string& line : in_lines) {
    if (absl::StartsWith(line, "a=candidate:") || absl::StartsWith(line, "a=ice-")) continue;
    if (line == "c=IN IP4 198.51.100.77") {
      expected.push_back("c=IN IP4 203.0.113.10");
    } else if (absl::StartsWith(line, "m=audio")) {
      relay_port = 40000;
      expected.push_back("m=audio 40000 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126");
    } else if (absl::StartsWith(line, "m=video")) {
      relay_port = 40002;
      expected.push_back("m=video 40002 UDP/TLS/RTP/SAVPF 96 97 102 103");
    } else if (line == "a=rtcp:9 IN IP4 0.0.0.0") {
      // Chrome's dummy RTCP address is a real one for a non-mux peer: it points at the relay now.
      expected.push_back(absl::StrCat("a=rtcp:", relay_port, " IN IP4 203.0.113.10"));
    } else {
      expected.push_back(line);
    }
  }
  const std::vector<std::string> out_lines = absl::StrSplit(out, "\r\n");
  EXPECT_EQ(out_lines, expected);
  EXPECT_THAT(out, HasSubstr("\r\na=group:BUNDLE 0 1\r\n"));
  EXPECT_THAT(out, HasSubstr("\r\na=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35"));
  EXPECT_THAT(out, HasSubstr("\r\na=ssrc:2882400002 cname:Yq3sF1x0kPZbLw7e\r\n"));
  EXPECT_THAT(out, Not(HasSubstr("candidate")));
  EXPECT_THAT(out, Not(HasSubstr("ice-")));
}

TEST(SdpRewriterTest, OriginRewriteOnAndOff) {
  const SessionDescription sdp = ParseOrDie(samples::kAsteriskOffer);
  RewriteOptions options = TargetsForActiveStreams(sdp);
  EXPECT_THAT(*Rewrite(sdp, options), HasSubstr("\r\no=- 1977433702 1977433702 IN IP4 203.0.113.50\r\n"));
  options.rewrite_origin = true;
  ExpectLinesEqualExcept(samples::kAsteriskOffer, *Rewrite(sdp, options),
                         {{1, "o=- 1977433702 1977433702 IN IP4 203.0.113.10"},
                          {3, "c=IN IP4 203.0.113.10"},
                          {5, "m=audio 40000 RTP/AVP 0 8 9 101"}});
}

TEST(SdpRewriterTest, Ipv6RelayGivesInIp6) {
  const SessionDescription sdp = ParseOrDie(samples::kCiscoSpaOffer);
  RewriteOptions options = TargetsForActiveStreams(sdp, "2001:db8:ff::10");
  options.rewrite_origin = true;
  ExpectLinesEqualExcept(samples::kCiscoSpaOffer, *Rewrite(sdp, options),
                         {{1, "o=- 13571 13571 IN IP6 2001:db8:ff::10"},
                          {3, "c=IN IP6 2001:db8:ff::10"},
                          {5, "m=audio 40000 RTP/AVP 0 2 8 18 101"}});
}

TEST(SdpRewriterTest, Ipv6PhoneBehindIpv4Relay) {
  ExpectLinesEqualExcept(samples::kIpv6Offer, RewriteWithDefaults(samples::kIpv6Offer),
                         {{3, "c=IN IP4 203.0.113.10"}, {5, "m=audio 40000 RTP/AVP 9 8 0 3 101"}});
}

TEST(SdpRewriterTest, RejectedStreamStaysAsIs) {
  const SessionDescription sdp = ParseOrDie(samples::kRejectedVideoAnswer);
  RewriteOptions options = TargetsForActiveStreams(sdp);
  ASSERT_EQ(options.streams.size(), 1u);
  const std::map<size_t, std::string> changed = {{3, "c=IN IP4 203.0.113.10"},
                                                 {5, "m=audio 40000 RTP/AVP 9 101"}};
  ExpectLinesEqualExcept(samples::kRejectedVideoAnswer, *Rewrite(sdp, options), changed);
  // A target for the rejected stream is ignored: port 0 stays port 0.
  options.streams.push_back({1, "", 40002, 40003});
  ExpectLinesEqualExcept(samples::kRejectedVideoAnswer, *Rewrite(sdp, options), changed);
}

TEST(SdpRewriterTest, ZeroAddressHoldKeepsZeroAddress) {
  ExpectLinesEqualExcept(samples::kZeroAddressHold, RewriteWithDefaults(samples::kZeroAddressHold),
                         {{5, "m=audio 40000 RTP/AVP 0 101"}});
  const SessionDescription out = ParseOrDie(RewriteWithDefaults(samples::kZeroAddressHold));
  EXPECT_TRUE(out.IsZeroAddressHold(0));
  EXPECT_EQ(out.EffectiveDirection(0), Direction::kSendOnly);
}

TEST(SdpRewriterTest, InheritedZeroAddressHoldGetsNoConnectionInserted) {
  constexpr char kText[] =
      "v=0\r\no=- 1 2 IN IP4 192.0.2.14\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
      "m=audio 18574 RTP/AVP 0\r\na=rtcp:18575 IN IP4 0.0.0.0\r\n";
  // RTCP keeps flowing on hold, so its address does become the relay's.
  EXPECT_EQ(RewriteWithDefaults(kText),
            "v=0\r\no=- 1 2 IN IP4 192.0.2.14\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
            "m=audio 40000 RTP/AVP 0\r\na=rtcp:40001 IN IP4 203.0.113.10\r\n");
}

TEST(SdpRewriterTest, IcePlaceholderIsRewritten) {
  constexpr char kText[] =
      "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
      "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:abcd\r\na=rtcp-mux\r\n";
  RewriteOptions options;
  options.relay_ip = kRelay;
  options.streams = {{0, "", 40000, 40000}};
  // The session c= stays (it might be a hold for other streams); the stream gets its own.
  EXPECT_EQ(RewriteOrDie(kText, options),
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
            "m=audio 40000 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 203.0.113.10\r\na=rtcp-mux\r\n");
}

TEST(SdpRewriterTest, ConnectionInsertedAfterInformationLine) {
  EXPECT_EQ(RewriteWithDefaults(samples::kNoConnectionWithInfo),
            "v=0\r\n"
            "o=gw 1 1 IN IP4 192.0.2.90\r\n"
            "s=-\r\n"
            "t=0 0\r\n"
            "m=audio 40000 RTP/AVP 0\r\n"
            "i=main audio\r\n"
            "c=IN IP4 203.0.113.10\r\n"
            "a=rtpmap:0 PCMU/8000\r\n");
}

TEST(SdpRewriterTest, ConnectionInsertedAfterMediaLine) {
  EXPECT_EQ(RewriteWithDefaults("v=0\r\no=gw 1 1 IN IP4 192.0.2.90\r\ns=-\r\nt=0 0\r\n"
                                "m=audio 20000 RTP/AVP 0\r\nm=video 20002 RTP/AVP 31\r\n"),
            "v=0\r\no=gw 1 1 IN IP4 192.0.2.90\r\ns=-\r\nt=0 0\r\n"
            "m=audio 40000 RTP/AVP 0\r\nc=IN IP4 203.0.113.10\r\n"
            "m=video 40002 RTP/AVP 31\r\nc=IN IP4 203.0.113.10\r\n");
}

TEST(SdpRewriterTest, PerStreamIpDifferentFromRelayIp) {
  RewriteOptions options;
  options.relay_ip = kRelay;
  options.streams = {{0, "", 40000, 40001}, {1, "2001:db8::77", 50000, 50001}};
  EXPECT_EQ(RewriteOrDie(samples::kAudioVideoOffer, options),
            "v=0\r\n"
            "o=- 38990 38990 IN IP4 192.168.1.80\r\n"
            "s=SDP data\r\n"
            "c=IN IP4 203.0.113.10\r\n"
            "t=0 0\r\n"
            "m=audio 40000 RTP/AVP 9 0 8 101\r\n"
            "a=rtpmap:9 G722/8000\r\n"
            "a=rtpmap:0 PCMU/8000\r\n"
            "a=rtpmap:8 PCMA/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\n"
            "a=fmtp:101 0-15\r\n"
            "a=ptime:20\r\n"
            "a=sendrecv\r\n"
            "m=video 50000 RTP/AVP 99\r\n"
            "c=IN IP6 2001:db8::77\r\n"
            "b=AS:2048\r\n"
            "a=rtpmap:99 H264/90000\r\n"
            "a=fmtp:99 profile-level-id=42801F; packetization-mode=1\r\n"
            "a=sendrecv\r\n");
}

TEST(SdpRewriterTest, LfOnlyAndMissingFinalTerminatorPreserved) {
  EXPECT_EQ(RewriteWithDefaults(samples::kLfOnlyOffer),
            "v=0\n"
            "o=jitsi 0 0 IN IP4 192.168.178.30\n"
            "s=-\n"
            "c=IN IP4 203.0.113.10\n"
            "t=0 0\n"
            "m=audio 40000 RTP/AVP 96 9 0 8 101\n"
            "a=rtpmap:96 opus/48000/2\n"
            "a=fmtp:96 usedtx=1\n"
            "a=rtpmap:101 telephone-event/8000\n"
            "a=sendrecv");
}

TEST(SdpRewriterTest, InsertedLastLineTakesOverMissingFinalTerminator) {
  RewriteOptions options;
  options.relay_ip = kRelay;
  options.streams = {{0, "", 40000, 40005}};
  EXPECT_THAT(RewriteOrDie(samples::kLfOnlyOffer, options),
              testing::EndsWith("a=rtpmap:101 telephone-event/8000\na=sendrecv\na=rtcp:40005"));
}

TEST(SdpRewriterTest, TrailingEmptyLineAndMixedEndingsPreserved) {
  const std::string input = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\ns=-\r\nc=IN IP4 192.0.2.1\nt=0 0\r\n"
                            "m=audio 4000 RTP/AVP 0\na=ptime:20\r\n\r\n";
  EXPECT_EQ(RewriteWithDefaults(input),
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\ns=-\r\nc=IN IP4 203.0.113.10\nt=0 0\r\n"
            "m=audio 40000 RTP/AVP 0\na=ptime:20\r\n\r\n");
}

TEST(SdpRewriterTest, RtcpAttributeAddedWhenRelayPortIsNotRtpPlusOne) {
  RewriteOptions options;
  options.relay_ip = kRelay;
  options.streams = {{0, "", 40000, 40010}};
  ExpectLinesEqualExcept(
      absl::StrCat(samples::kCiscoSpaOffer, "a=rtcp:40010\r\n"),
      RewriteOrDie(samples::kCiscoSpaOffer, options),
      {{3, "c=IN IP4 203.0.113.10"}, {5, "m=audio 40000 RTP/AVP 0 2 8 18 101"}});
}

TEST(SdpRewriterTest, RtcpMuxWithSharedPortNeedsNoRtcpAttribute) {
  RewriteOptions options;
  options.relay_ip = kRelay;
  options.streams = {{0, "", 40000, 40000}};
  const std::map<size_t, std::string> changed = {{3, "c=IN IP4 203.0.113.10"},
                                                 {5, "m=audio 40000 RTP/AVP 106 9 98 101 0 8 3"}};
  ExpectLinesEqualExcept(samples::kZoiperOffer, RewriteOrDie(samples::kZoiperOffer, options), changed);
  // With separate RTCP port a non-mux answerer must learn it (RFC 5761 section 5.1.3).
  options.streams = {{0, "", 40000, 40001}};
  ExpectLinesEqualExcept(absl::StrCat(samples::kZoiperOffer, "a=rtcp:40001\r\n"),
                         RewriteOrDie(samples::kZoiperOffer, options), changed);
}

TEST(SdpRewriterTest, PortCountIsDropped) {
  const std::string out = RewriteWithDefaults(
      "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
      "m=video 49170/2 RTP/AVP 31\r\n");
  EXPECT_THAT(out, HasSubstr("\r\nm=video 40000 RTP/AVP 31\r\n"));
}

TEST(SdpRewriterTest, EverySampleRoundTrips) {
  for (const char* text :
       {samples::kYealinkOffer, samples::kYealinkHoldReinvite, samples::kPolycomSrtpOffer,
        samples::kGrandstreamOffer, samples::kLinphoneIceOffer, samples::kZoiperOffer,
        samples::kCiscoSpaOffer, samples::kAsteriskOffer, samples::kFreeswitchAnswer,
        samples::kChromeWebrtcOffer, samples::kAudioVideoOffer, samples::kRejectedVideoAnswer,
        samples::kIpv6Offer, samples::kZeroAddressHold, samples::kMediaLevelConnectionOnly,
        samples::kLfOnlyOffer, samples::kNoConnectionWithInfo}) {
    SCOPED_TRACE(text);
    const SessionDescription in = ParseOrDie(text);
    const SessionDescription out = ParseOrDie(RewriteWithDefaults(text));
    ASSERT_EQ(out.media().size(), in.media().size());
    for (size_t i = 0; i < in.media().size(); ++i) {
      EXPECT_EQ(out.EffectiveDirection(i), in.EffectiveDirection(i)) << "media " << i;
      EXPECT_EQ(static_cast<size_t>(out.media()[i].port), in.media()[i].port == 0 ? 0 : 40000 + 2 * i);
      EXPECT_FALSE(out.UsesIce(i));
    }
    // Nothing but the relay is left for the other side to send to.
    for (const std::string& address : out.ConnectionAddresses()) EXPECT_EQ(address, kRelay);
    // Rewriting is idempotent for the same targets.
    EXPECT_EQ(RewriteWithDefaults(RewriteWithDefaults(text)), RewriteWithDefaults(text));
  }
}

TEST(SdpRewriterTest, EmptyRewriteOfZeroMediaSdp) {
  EXPECT_EQ(RewriteOrDie("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n",
                         RewriteOptions{kRelay, {}, true, false}),
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 203.0.113.10\r\nt=0 0\r\n");
}

// ---- Errors ----

TEST(SdpRewriterErrorTest, MissingTargetNamesTheMedia) {
  RewriteOptions options;
  options.relay_ip = kRelay;
  options.streams = {{0, "", 40000, 40001}};
  EXPECT_EQ(RewriteError(samples::kAudioVideoOffer, options),
            "media index 1 (m=\"video\" port 11798) has no stream target");
}

TEST(SdpRewriterErrorTest, TargetForMediaThatDoesNotExist) {
  RewriteOptions options = TargetsForActiveStreams(ParseOrDie(samples::kYealinkOffer));
  options.streams.push_back({3, "", 40006, 40007});
  EXPECT_EQ(RewriteError(samples::kYealinkOffer, options),
            "stream target for media index 3, but the SDP has only 1 m= line(s)");
}

TEST(SdpRewriterErrorTest, DuplicateTarget) {
  RewriteOptions options = TargetsForActiveStreams(ParseOrDie(samples::kYealinkOffer));
  options.streams.push_back(options.streams[0]);
  EXPECT_EQ(RewriteError(samples::kYealinkOffer, options), "two stream targets for media index 0");
}

TEST(SdpRewriterErrorTest, BadAddressesAndPorts) {
  const SessionDescription sdp = ParseOrDie(samples::kYealinkOffer);
  RewriteOptions options = TargetsForActiveStreams(sdp, "relay.example.net");
  EXPECT_EQ(Rewrite(sdp, options).status().message(),
            "relay_ip \"relay.example.net\" is not an IP address");
  options.relay_ip = "0.0.0.0";
  EXPECT_THAT(Rewrite(sdp, options).status().message(), HasSubstr("is the unspecified address"));
  options.relay_ip = "";
  EXPECT_THAT(Rewrite(sdp, options).status().message(), HasSubstr("relay_ip \"\" is not"));
  options.relay_ip = kRelay;
  options.streams[0].rtp_ip = "[2001:db8::1]";
  EXPECT_EQ(Rewrite(sdp, options).status().message(),
            "rtp_ip of media index 0 \"[2001:db8::1]\" is not an IP address");
  options.streams[0].rtp_ip = "";
  options.streams[0].rtp_port = 0;
  EXPECT_EQ(Rewrite(sdp, options).status().message(),
            "stream target for media index 0 has port 0 (rtp 0, rtcp 40001)");
}

TEST(SdpRewriterErrorTest, ResultOverTheSizeLimit) {
  // 64 streams without c=, each needing an inserted c= and a=rtcp, from a body just under the limit.
  std::string text = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n";
  for (int i = 0; i < 64; ++i) absl::StrAppend(&text, "m=audio ", 1000 + i, " RTP/AVP 0\r\n");
  while (text.size() < kMaxSdpBytes - 40) absl::StrAppend(&text, "a=x-filler:0123456789abcdef\r\n");
  const SessionDescription sdp = ParseOrDie(text);
  RewriteOptions options = TargetsForActiveStreams(sdp);
  for (StreamTarget& stream : options.streams) stream.rtcp_port = 60000;
  EXPECT_THAT(Rewrite(sdp, options).status().message(), HasSubstr("the limit is 65536"));
}

}  // namespace
}  // namespace latchkey::control::sdp
