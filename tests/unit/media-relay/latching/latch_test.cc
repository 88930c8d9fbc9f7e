#include "media-relay/latching/latch.h"

#include <array>
#include <cstdint>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace latchkey::relay {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

absl::Time Ms(int64_t ms) { return kT0 + absl::Milliseconds(ms); }

net::SocketAddress Addr(const std::string& text) {
  auto address = net::SocketAddress::Parse(text);
  EXPECT_TRUE(address.ok()) << address.status();
  return address.ok() ? *address : net::SocketAddress{};
}

net::IpAddress Ip(const std::string& text) {
  auto ip = net::IpAddress::Parse(text);
  EXPECT_TRUE(ip.ok()) << ip.status();
  return ip.ok() ? *ip : net::IpAddress();
}

RtpHeader Rtp(uint32_t ssrc, uint16_t seq) {
  RtpHeader rtp;
  rtp.ssrc = ssrc;
  rtp.sequence = seq;
  rtp.timestamp = uint32_t{seq} * 160;
  rtp.header_length = 12;
  rtp.payload_length = 160;
  return rtp;
}

// The endpoint announced a public address and sends from it.
const char kSdp[] = "203.0.113.5:30000";
// Same IP, other port: the endpoint's NAT (or a second stream of the same host).
const char kSdpIpOtherPort[] = "203.0.113.5:31000";
// An endpoint behind NAT: private SDP, media from the NAT's public address, which is also where its
// SIP came from.
const char kPrivateSdp[] = "10.0.0.5:4000";
const char kNatSource[] = "198.51.100.7:50000";
const char kNatIp[] = "198.51.100.7";
const char kAttacker[] = "192.0.2.66:40000";

LatchPolicy Policy(v1::LatchingMode mode) {
  LatchPolicy policy;
  policy.mode = mode;
  return policy;
}

LatchTarget Target(std::optional<std::string> sdp, std::optional<std::string> signaling_ip, bool sendable) {
  LatchTarget target;
  if (sdp) target.sdp = Addr(*sdp);
  if (signaling_ip) target.signaling_ip = Ip(*signaling_ip);
  target.sdp_sendable = sendable;
  return target;
}

// A public endpoint: SDP address sendable, signalling from the same IP.
LatchTarget PublicTarget() { return Target(kSdp, "203.0.113.5", true); }
// A NATed endpoint: private SDP (not sendable), signalling from the NAT's IP.
LatchTarget NatTarget() { return Target(kPrivateSdp, kNatIp, false); }

// One RTP stream: a source, an SSRC and a running sequence number.
struct Stream {
  net::SocketAddress source;
  uint32_t ssrc;
  uint16_t seq = 1000;

  LatchDecision Send(Latch& latch, absl::Time now) { return latch.OnRtp(source, Rtp(ssrc, seq++), now); }
};

Stream MakeStream(const std::string& source, uint32_t ssrc, uint16_t seq = 1000) {
  return Stream{Addr(source), ssrc, seq};
}

// Per-source outcome of a run.
struct Tally {
  int forwarded = 0;
  int latched = 0;
  int relatched = 0;
  std::array<int, static_cast<size_t>(DropReason::kCount)> drops{};

  void Add(const LatchDecision& d) {
    if (d.forward) {
      ++forwarded;
      EXPECT_EQ(d.reason, DropReason::kNone);
    } else {
      EXPECT_NE(d.reason, DropReason::kNone);
      EXPECT_EQ(d.event, LatchEvent::kNone) << "a dropped packet never latches";
      ++drops[static_cast<size_t>(d.reason)];
    }
    if (d.event == LatchEvent::kLatched) ++latched;
    if (d.event == LatchEvent::kRelatched) ++relatched;
  }
  int drop(DropReason r) const { return drops[static_cast<size_t>(r)]; }
  int total_drops() const {
    int n = 0;
    for (int c : drops) n += c;
    return n;
  }
};

Latch Configured(v1::LatchingMode mode, const LatchTarget& target, absl::Time now = kT0) {
  Latch latch;
  latch.Configure(Policy(mode), target, now);
  return latch;
}

// Latched on the exact SDP address at t=0.
Latch LatchedOnSdp(v1::LatchingMode mode, Stream& endpoint) {
  Latch latch = Configured(mode, PublicTarget());
  const LatchDecision d = endpoint.Send(latch, kT0);
  EXPECT_TRUE(d.forward);
  EXPECT_EQ(d.event, LatchEvent::kLatched);
  return latch;
}

const v1::LatchingMode kLearningModes[] = {v1::LATCHING_MODE_FIRST_PACKET, v1::LATCHING_MODE_SIGNALING_SOURCE,
                                           v1::LATCHING_MODE_HEURISTIC};

std::string ModeName(const ::testing::TestParamInfo<v1::LatchingMode>& info) {
  return v1::LatchingMode_Name(info.param);
}

// ---------------------------------------------------------------------------------------------
// Basics

TEST(LatchTest, SizeIsSmall) { EXPECT_LE(sizeof(Latch), 256u); }

TEST(LatchTest, FirstPacketLatchesAfterProbation) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  Stream endpoint = MakeStream(kNatSource, 0x1111);
  EXPECT_FALSE(latch.Destination().has_value()) << "private SDP: wait for packets";
  for (int i = 0; i < 3; ++i) {
    const LatchDecision d = endpoint.Send(latch, Ms(20 * i));
    EXPECT_FALSE(d.forward);
    EXPECT_EQ(d.reason, DropReason::kProbation);
    EXPECT_FALSE(latch.latched());
  }
  LatchDecision d = endpoint.Send(latch, Ms(60));
  EXPECT_TRUE(d.forward);
  EXPECT_EQ(d.event, LatchEvent::kLatched);
  EXPECT_EQ(latch.latched_source(), Addr(kNatSource));
  EXPECT_EQ(latch.Destination(), Addr(kNatSource));
  EXPECT_EQ(latch.latched_ssrc(), 0x1111u);
  EXPECT_EQ(latch.relatch_count(), 0u);

  d = endpoint.Send(latch, Ms(80));
  EXPECT_TRUE(d.forward);
  EXPECT_EQ(d.event, LatchEvent::kNone) << "the event is reported once";
}

TEST(LatchTest, ProbationCountRestartsOnGapOrSsrcChange) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  const net::SocketAddress source = Addr(kNatSource);
  int64_t t = 0;
  auto send = [&](uint32_t ssrc, uint16_t seq) { return latch.OnRtp(source, Rtp(ssrc, seq), Ms(t += 20)); };
  EXPECT_EQ(send(1, 10).reason, DropReason::kProbation);
  EXPECT_EQ(send(1, 11).reason, DropReason::kProbation);
  EXPECT_EQ(send(1, 13).reason, DropReason::kProbation);  // gap: count back to 1
  EXPECT_EQ(send(1, 14).reason, DropReason::kProbation);
  EXPECT_EQ(send(2, 15).reason, DropReason::kProbation);  // new SSRC: back to 1
  EXPECT_EQ(send(2, 16).reason, DropReason::kProbation);
  EXPECT_EQ(send(2, 16).reason, DropReason::kProbation);  // duplicate: back to 1
  EXPECT_EQ(send(2, 17).reason, DropReason::kProbation);
  EXPECT_EQ(send(2, 18).reason, DropReason::kProbation);
  EXPECT_TRUE(send(2, 19).forward);  // 16, 17, 18, 19: four in sequence
}

TEST(LatchTest, SequenceWrapIsInSequence) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  Stream endpoint = MakeStream(kNatSource, 7, 65534);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(endpoint.Send(latch, Ms(20 * i)).forward);
  EXPECT_TRUE(endpoint.Send(latch, Ms(60)).forward);  // 65534, 65535, 0, 1
}

class ExactSdpTest : public ::testing::TestWithParam<v1::LatchingMode> {};

TEST_P(ExactSdpTest, LatchesOnFirstPacket) {
  // Signalling from elsewhere (e.g. a proxy in front): the exact SDP address is still trusted.
  Latch latch = Configured(GetParam(), Target(kSdp, "192.0.2.1", true));
  EXPECT_EQ(latch.Destination(), Addr(kSdp)) << "sendable SDP: media may flow before latching";
  Stream endpoint = MakeStream(kSdp, 0x2222);
  const LatchDecision d = endpoint.Send(latch, kT0);
  EXPECT_TRUE(d.forward);
  EXPECT_EQ(d.event, LatchEvent::kLatched);
  EXPECT_EQ(latch.latched_source(), Addr(kSdp));
}

INSTANTIATE_TEST_SUITE_P(Modes, ExactSdpTest, ::testing::ValuesIn(kLearningModes), ModeName);

TEST(LatchTest, V4MappedSourceMatchesV4Sdp) {
  // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  Stream endpoint = MakeStream("[::ffff:203.0.113.5]:30000", 1);
  const LatchDecision d = endpoint.Send(latch, kT0);
  EXPECT_TRUE(d.forward);
  EXPECT_EQ(d.event, LatchEvent::kLatched);
  EXPECT_EQ(latch.Destination(), Addr("[::ffff:203.0.113.5]:30000")) << "reply in the socket's own form";
}

TEST(LatchTest, DestinationBeforeLatching) {
  EXPECT_EQ(Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget()).Destination(), Addr(kSdp));
  EXPECT_FALSE(Configured(v1::LATCHING_MODE_HEURISTIC, Target(kSdp, std::nullopt, false)).Destination());
  EXPECT_FALSE(Configured(v1::LATCHING_MODE_HEURISTIC, Target(std::nullopt, kNatIp, true)).Destination());
  // Old-style hold (c=0.0.0.0) and a rejected stream (port 0) name no address, whatever the caller says.
  EXPECT_FALSE(Configured(v1::LATCHING_MODE_HEURISTIC, Target("0.0.0.0:30000", kNatIp, true)).Destination());
  LatchTarget port_zero = PublicTarget();
  port_zero.sdp->port = 0;
  EXPECT_FALSE(Configured(v1::LATCHING_MODE_HEURISTIC, port_zero).Destination());
  EXPECT_FALSE(Latch().Destination());
}

TEST(LatchTest, LastPacketIsLastForwarded) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  EXPECT_EQ(latch.last_packet(), absl::InfinitePast());
  Stream endpoint = MakeStream(kNatSource, 1);
  for (int i = 0; i < 3; ++i) endpoint.Send(latch, Ms(20 * i));
  EXPECT_EQ(latch.last_packet(), absl::InfinitePast()) << "probation drops are not the endpoint's media";
  endpoint.Send(latch, Ms(60));
  EXPECT_EQ(latch.last_packet(), Ms(60));
  Stream attacker = MakeStream(kAttacker, 9);
  attacker.Send(latch, Ms(70));
  EXPECT_EQ(latch.last_packet(), Ms(60));
  EXPECT_TRUE(latch.OnRtcp(Addr("198.51.100.7:50001"), Ms(90)).forward);
  EXPECT_EQ(latch.last_packet(), Ms(90));
}

TEST(LatchTest, DropReasonNamesAreDistinct) {
  std::set<std::string> names;
  for (int i = 0; i < static_cast<int>(DropReason::kCount); ++i) {
    names.insert(std::string(DropReasonName(static_cast<DropReason>(i))));
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(DropReason::kCount));
  EXPECT_EQ(DropReasonName(DropReason::kWrongSource), "wrong_source");
}

// ---------------------------------------------------------------------------------------------
// Attack 1: RTP Bleed. Before the endpoint sends, an attacker sprays packets with random SSRCs and
// sequence numbers: nothing is forwarded and media is never sent to the attacker.

class RtpBleedTest : public ::testing::TestWithParam<v1::LatchingMode> {};

TEST_P(RtpBleedTest, SprayBeforeEndpointNeverForwardedNorLatched) {
  Latch latch = Configured(GetParam(), PublicTarget());
  const net::SocketAddress attacker = Addr(kAttacker);
  std::mt19937 rng(42);
  Tally tally;
  absl::Time now = kT0;
  for (int i = 0; i < 1000; ++i) {
    now += absl::Microseconds(500 + rng() % 20000);  // 0.5-20.5 ms apart
    tally.Add(latch.OnRtp(attacker, Rtp(rng(), static_cast<uint16_t>(rng())), now));
    ASSERT_EQ(latch.Destination(), Addr(kSdp)) << "packet " << i;
  }
  EXPECT_EQ(tally.forwarded, 0);
  EXPECT_EQ(tally.latched + tally.relatched, 0);
  EXPECT_FALSE(latch.latched());
  EXPECT_EQ(tally.total_drops(), 1000);
  if (GetParam() == v1::LATCHING_MODE_SIGNALING_SOURCE) {
    EXPECT_EQ(tally.drop(DropReason::kNotSignalingIp), 1000);
  } else {
    EXPECT_GT(tally.drop(DropReason::kProbation), 0);
    EXPECT_GT(tally.drop(DropReason::kTooFast), 0);
    EXPECT_EQ(tally.drop(DropReason::kProbation) + tally.drop(DropReason::kTooFast), 1000);
  }

  // The endpoint starts: it latches at once, and the spray stays out.
  Stream endpoint = MakeStream(kSdp, 0x5555);
  Tally after;
  for (int i = 0; i < 200; ++i) {
    now += absl::Milliseconds(10);
    if (i % 2 == 0) {
      const LatchDecision d = endpoint.Send(latch, now);
      EXPECT_TRUE(d.forward);
    } else {
      after.Add(latch.OnRtp(attacker, Rtp(rng(), static_cast<uint16_t>(rng())), now));
    }
    EXPECT_EQ(latch.Destination(), Addr(kSdp));
  }
  EXPECT_EQ(after.forwarded, 0);
  EXPECT_EQ(after.drop(DropReason::kProbation), 0) << "after the lock nothing is 'in probation'";
}

INSTANTIATE_TEST_SUITE_P(Modes, RtpBleedTest, ::testing::ValuesIn(kLearningModes), ModeName);

TEST(LatchTest, SprayAtNatedEndpointNeverBecomesDestination) {
  // Private SDP: nothing to send to until a source proves itself.
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  std::mt19937 rng(7);
  Tally tally;
  absl::Time now = kT0;
  for (int i = 0; i < 1000; ++i) {
    now += absl::Milliseconds(3);
    tally.Add(latch.OnRtp(Addr(kAttacker), Rtp(rng(), static_cast<uint16_t>(rng())), now));
    ASSERT_FALSE(latch.Destination().has_value());
  }
  EXPECT_EQ(tally.forwarded, 0);
  EXPECT_EQ(tally.drop(DropReason::kProbation), 1000);
}

TEST(LatchTest, SprayFromManyPortsDoesNotEvictBetterCandidate) {
  // The endpoint's NAT keeps its IP (rank: same IP as SDP); the attacker sprays from 400 ports.
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  Stream endpoint = MakeStream(kSdpIpOtherPort, 0x7777);
  std::mt19937 rng(3);
  Tally attacker;
  std::optional<LatchDecision> latched;
  for (int i = 0; i < 4 && !latched; ++i) {
    for (int k = 0; k < 100; ++k) {
      const auto port = static_cast<uint16_t>(20000 + 100 * i + k);
      net::SocketAddress source = Addr(kAttacker);
      source.port = port;
      attacker.Add(latch.OnRtp(source, Rtp(rng(), static_cast<uint16_t>(rng())), Ms(20 * i) + absl::Microseconds(k)));
    }
    const LatchDecision d = endpoint.Send(latch, Ms(20 * i + 10));
    if (d.forward) latched = d;
  }
  ASSERT_TRUE(latched.has_value());
  EXPECT_EQ(latched->event, LatchEvent::kLatched);
  EXPECT_EQ(latch.latched_source(), Addr(kSdpIpOtherPort));
  EXPECT_EQ(attacker.forwarded, 0);
}

// ---------------------------------------------------------------------------------------------
// Attack 2: an in-sequence stream at 1000 pps (below min_interarrival) never passes probation.

class FloodTest : public ::testing::TestWithParam<v1::LatchingMode> {};

TEST_P(FloodTest, InSequenceFloodNeverPassesProbation) {
  Latch latch = Configured(GetParam(), NatTarget());
  // In SIGNALING_SOURCE the flood must come from the signalling IP to be considered at all.
  Stream flood = MakeStream(GetParam() == v1::LATCHING_MODE_SIGNALING_SOURCE ? "198.51.100.7:40000" : kAttacker,
                            0xbad);
  Tally tally;
  for (int i = 0; i < 3000; ++i) {
    tally.Add(flood.Send(latch, Ms(i)));
    ASSERT_FALSE(latch.Destination().has_value());
  }
  EXPECT_EQ(tally.forwarded, 0);
  EXPECT_EQ(tally.drop(DropReason::kProbation), 1);
  EXPECT_EQ(tally.drop(DropReason::kTooFast), 2999);

  // The flood goes on while the real endpoint (50 pps) starts: the endpoint latches, the flood never.
  Stream endpoint = MakeStream(kNatSource, 0x600d);
  Tally real;
  for (int i = 3000; i < 4000; ++i) {
    tally.Add(flood.Send(latch, Ms(i)));
    if (i % 20 == 10) real.Add(endpoint.Send(latch, Ms(i)));
  }
  EXPECT_EQ(real.latched, 1);
  EXPECT_EQ(real.forwarded, 50 - 3);
  EXPECT_EQ(latch.latched_source(), Addr(kNatSource));
  EXPECT_EQ(tally.forwarded, 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, FloodTest, ::testing::ValuesIn(kLearningModes), ModeName);

// ---------------------------------------------------------------------------------------------
// Attack 3: after the lock, an attacker with its own in-sequence 50 pps stream cannot take over
// while the endpoint keeps sending.

class TakeoverTest : public ::testing::TestWithParam<v1::LatchingMode> {};

TEST_P(TakeoverTest, AttackerCannotTakeOverActiveLock) {
  Stream endpoint = MakeStream(kSdp, 0x1234);
  Latch latch = LatchedOnSdp(GetParam(), endpoint);
  Stream attacker = MakeStream(kAttacker, 0x6666);
  Tally tally;
  for (int i = 1; i < 500; ++i) {  // 10 s, well past the learning window and relatch_silence
    EXPECT_TRUE(endpoint.Send(latch, Ms(20 * i)).forward);
    tally.Add(attacker.Send(latch, Ms(20 * i + 10)));
  }
  EXPECT_EQ(tally.forwarded, 0);
  EXPECT_EQ(tally.latched + tally.relatched, 0);
  EXPECT_EQ(latch.latched_source(), Addr(kSdp));
  EXPECT_EQ(latch.relatch_count(), 0u);
  EXPECT_EQ(tally.drop(GetParam() == v1::LATCHING_MODE_SIGNALING_SOURCE ? DropReason::kNotSignalingIp
                                                                         : DropReason::kWrongSource),
            499);
}

TEST_P(TakeoverTest, AttackerGuessingSsrcWithWrongSequenceCannotTakeOver) {
  Stream endpoint = MakeStream(kSdp, 0x1234);
  Latch latch = LatchedOnSdp(GetParam(), endpoint);
  Tally tally;
  // Even knowing the SSRC, a sequence behind the lock or far ahead is not a rebinding.
  for (int i = 1; i < 200; ++i) {
    EXPECT_TRUE(endpoint.Send(latch, Ms(20 * i)).forward);
    tally.Add(latch.OnRtp(Addr(kAttacker), Rtp(0x1234, static_cast<uint16_t>(endpoint.seq - 5)), Ms(20 * i + 5)));
    tally.Add(latch.OnRtp(Addr(kAttacker), Rtp(0x1234, static_cast<uint16_t>(endpoint.seq + 500)), Ms(20 * i + 15)));
  }
  EXPECT_EQ(tally.forwarded, 0);
  EXPECT_EQ(latch.latched_source(), Addr(kSdp));
}

INSTANTIATE_TEST_SUITE_P(Modes, TakeoverTest, ::testing::ValuesIn(kLearningModes), ModeName);

// ---------------------------------------------------------------------------------------------
// Attack 4 / 5: legitimate moves.

class NatRebindingTest : public ::testing::TestWithParam<v1::LatchingMode> {};

TEST_P(NatRebindingTest, SameSsrcContinuingFromNewPortRelatchesAtOnce) {
  Latch latch = Configured(GetParam(), NatTarget());
  Stream endpoint = MakeStream(kNatSource, 0xabcd);
  int64_t t = 0;
  for (; t < 2000; t += 20) endpoint.Send(latch, Ms(t));
  ASSERT_EQ(latch.latched_source(), Addr(kNatSource));

  // The NAT rebinds: same stream, new port.
  const uint16_t late_seq = static_cast<uint16_t>(endpoint.seq - 1);
  endpoint.source = Addr("198.51.100.7:50002");
  LatchDecision d = endpoint.Send(latch, Ms(t));
  EXPECT_TRUE(d.forward);
  EXPECT_EQ(d.event, LatchEvent::kRelatched);
  EXPECT_EQ(latch.Destination(), Addr("198.51.100.7:50002"));
  EXPECT_EQ(latch.relatch_count(), 1u);
  EXPECT_EQ(latch.latched_ssrc(), 0xabcdu);

  // A late packet through the old mapping does not flip back.
  d = latch.OnRtp(Addr(kNatSource), Rtp(0xabcd, late_seq), Ms(t + 5));
  EXPECT_FALSE(d.forward);
  EXPECT_EQ(d.reason, DropReason::kWrongSource);
  EXPECT_TRUE(endpoint.Send(latch, Ms(t + 20)).forward);
  EXPECT_EQ(latch.Destination(), Addr("198.51.100.7:50002"));
}

INSTANTIATE_TEST_SUITE_P(Modes, NatRebindingTest, ::testing::ValuesIn(kLearningModes), ModeName);

TEST(LatchTest, SameSsrcTooFarAheadIsNotRebinding) {
  Stream endpoint = MakeStream(kSdp, 0x1234);
  Latch latch = LatchedOnSdp(v1::LATCHING_MODE_HEURISTIC, endpoint);
  endpoint.Send(latch, Ms(1500));
  const LatchDecision d =
      latch.OnRtp(Addr("203.0.113.5:30002"), Rtp(0x1234, static_cast<uint16_t>(endpoint.seq + 100)), Ms(1520));
  EXPECT_FALSE(d.forward);
  EXPECT_EQ(d.reason, DropReason::kWrongSource);
  const LatchDecision ok =
      latch.OnRtp(Addr("203.0.113.5:30002"), Rtp(0x1234, static_cast<uint16_t>(endpoint.seq + 99)), Ms(1540));
  EXPECT_TRUE(ok.forward) << "100 ahead of the lock's last sequence is the limit";
}

TEST(LatchTest, WifiToLteRelatchesAfterSilenceAndProbation) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  Stream wifi = MakeStream(kNatSource, 0x1);
  int64_t t = 0;
  for (; t < 1000; t += 20) wifi.Send(latch, Ms(t));
  ASSERT_EQ(latch.latched_source(), Addr(kNatSource));
  const int64_t wifi_last = t - 20;

  // The phone moves to LTE: new IP, new SSRC (the app restarted the stream).
  Stream lte = MakeStream("192.0.2.200:6000", 0x2, 50);
  Tally tally;
  std::optional<int64_t> relatched_at;
  for (; t < 5000; t += 20) {
    const LatchDecision d = lte.Send(latch, Ms(t));
    tally.Add(d);
    if (d.event == LatchEvent::kRelatched) relatched_at = t;
    if (!relatched_at) {
      EXPECT_FALSE(d.forward) << t;
    }
  }
  ASSERT_TRUE(relatched_at.has_value());
  // Silent for relatch_silence (2 s), then probation_packets (4) counted after that.
  EXPECT_GE(*relatched_at, wifi_last + 2000);
  EXPECT_LE(*relatched_at, wifi_last + 2000 + 4 * 20);
  EXPECT_EQ(tally.relatched, 1);
  EXPECT_EQ(latch.Destination(), Addr("192.0.2.200:6000"));
  EXPECT_EQ(latch.relatch_count(), 1u);
  EXPECT_EQ(latch.latched_ssrc(), 0x2u);
}

TEST(LatchTest, SignalingSourceRelatchesOnlyToSignalingIp) {
  Latch latch = Configured(v1::LATCHING_MODE_SIGNALING_SOURCE, NatTarget());
  Stream wifi = MakeStream(kNatSource, 0x1);
  int64_t t = 0;
  for (; t < 1000; t += 20) wifi.Send(latch, Ms(t));
  ASSERT_TRUE(latch.latched());

  // A new IP that is not where SIP comes from: never, however long the old source is silent.
  Stream lte = MakeStream("192.0.2.200:6000", 0x2);
  Tally tally;
  for (; t < 10000; t += 20) tally.Add(lte.Send(latch, Ms(t)));
  EXPECT_EQ(tally.forwarded, 0);
  EXPECT_EQ(tally.drop(DropReason::kNotSignalingIp), tally.total_drops());
  EXPECT_EQ(latch.latched_source(), Addr(kNatSource));

  // Another port of the signalling IP (the NAT lost the mapping, new SSRC): after silence + probation.
  Stream remapped = MakeStream("198.51.100.7:50900", 0x3);
  Tally moved;
  for (int i = 0; i < 10; ++i, t += 20) moved.Add(remapped.Send(latch, Ms(t)));
  EXPECT_EQ(moved.relatched, 1);
  EXPECT_EQ(latch.Destination(), Addr("198.51.100.7:50900"));
}

// ---------------------------------------------------------------------------------------------
// Attack 6: SIGNALING_SOURCE refuses other IPs.

TEST(LatchTest, SignalingSourceRefusesOtherIps) {
  Latch latch = Configured(v1::LATCHING_MODE_SIGNALING_SOURCE, NatTarget());
  Stream attacker = MakeStream(kAttacker, 0x6666);
  Tally tally;
  int64_t t = 0;
  for (; t < 5000; t += 20) tally.Add(attacker.Send(latch, Ms(t)));
  EXPECT_EQ(tally.forwarded, 0);
  EXPECT_EQ(tally.drop(DropReason::kNotSignalingIp), 250);
  EXPECT_FALSE(latch.latched());
  EXPECT_FALSE(latch.Destination().has_value());
  EXPECT_EQ(latch.OnRtcp(Addr("192.0.2.66:40001"), Ms(t)).forward, false);

  // Any port of the signalling IP is fine (the NAT picks it).
  Stream endpoint = MakeStream("198.51.100.7:61234", 0x1);
  Tally real;
  for (int i = 0; i < 4; ++i, t += 20) {
    real.Add(endpoint.Send(latch, Ms(t)));
    tally.Add(attacker.Send(latch, Ms(t + 10)));
  }
  EXPECT_EQ(real.latched, 1);
  EXPECT_EQ(latch.latched_source(), Addr("198.51.100.7:61234"));
  EXPECT_EQ(tally.forwarded, 0);
}

TEST(LatchTest, SignalingSourceWithoutSignalingIpLatchesOnlyExactSdp) {
  Latch latch = Configured(v1::LATCHING_MODE_SIGNALING_SOURCE, Target(kSdp, std::nullopt, true));
  Stream other = MakeStream(kSdpIpOtherPort, 1);
  Tally tally;
  for (int i = 0; i < 20; ++i) tally.Add(other.Send(latch, Ms(20 * i)));
  EXPECT_EQ(tally.drop(DropReason::kNotSignalingIp), 20);
  Stream endpoint = MakeStream(kSdp, 2);
  EXPECT_EQ(endpoint.Send(latch, Ms(500)).event, LatchEvent::kLatched);
}

// ---------------------------------------------------------------------------------------------
// Attack 7: HEURISTIC ranking.

TEST(LatchTest, HeuristicPrefersExactSdpOverEarlierSameIpCandidate) {
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  Stream same_ip = MakeStream(kSdpIpOtherPort, 0x10);
  Stream exact = MakeStream(kSdp, 0x20);
  Tally other;
  other.Add(same_ip.Send(latch, Ms(0)));
  other.Add(same_ip.Send(latch, Ms(20)));
  const LatchDecision d = exact.Send(latch, Ms(30));
  EXPECT_TRUE(d.forward);
  EXPECT_EQ(d.event, LatchEvent::kLatched);
  for (int i = 2; i < 100; ++i) {
    other.Add(same_ip.Send(latch, Ms(20 * i)));
    EXPECT_TRUE(exact.Send(latch, Ms(20 * i + 10)).forward);
  }
  EXPECT_EQ(other.forwarded, 0);
  EXPECT_EQ(latch.latched_source(), Addr(kSdp));
}

TEST(LatchTest, HeuristicExactSdpTakesOverWithinWindow) {
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  Stream same_ip = MakeStream(kSdpIpOtherPort, 0x10);
  for (int i = 0; i < 4; ++i) same_ip.Send(latch, Ms(20 * i));
  ASSERT_EQ(latch.latched_source(), Addr(kSdpIpOtherPort)) << "nothing better was around";

  // 100 ms later (inside the window, and inside relatch_min_interval) the signalled address shows up.
  Stream exact = MakeStream(kSdp, 0x20);
  const LatchDecision d = exact.Send(latch, Ms(160));
  EXPECT_TRUE(d.forward);
  EXPECT_EQ(d.event, LatchEvent::kRelatched);
  EXPECT_EQ(latch.latched_source(), Addr(kSdp));
  EXPECT_EQ(same_ip.Send(latch, Ms(170)).reason, DropReason::kWrongSource);
}

TEST(LatchTest, HeuristicBetterRankedInProbationBlocksWorse) {
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  Stream anywhere = MakeStream(kAttacker, 0x66);
  Stream same_ip = MakeStream(kSdpIpOtherPort, 0x77);
  Tally worse, better;
  for (int i = 0; i < 4; ++i) {
    worse.Add(anywhere.Send(latch, Ms(20 * i)));
    better.Add(same_ip.Send(latch, Ms(20 * i + 10)));
  }
  EXPECT_EQ(worse.drop(DropReason::kProbation), 3);
  EXPECT_EQ(worse.drop(DropReason::kWrongSource), 1) << "passed probation, but a better candidate is proving itself";
  EXPECT_EQ(better.latched, 1);
  EXPECT_EQ(latch.latched_source(), Addr(kSdpIpOtherPort));
  EXPECT_EQ(worse.forwarded, 0);
}

TEST(LatchTest, HeuristicSamePortRanksAboveAnywhere) {
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  Stream anywhere = MakeStream(kAttacker, 0x66);
  Stream same_port = MakeStream("192.0.2.77:30000", 0x77);
  for (int i = 0; i < 4; ++i) {
    anywhere.Send(latch, Ms(20 * i));
    same_port.Send(latch, Ms(20 * i + 10));
  }
  EXPECT_EQ(latch.latched_source(), Addr("192.0.2.77:30000"));
}

TEST(LatchTest, HeuristicAfterWindowFirstToPassWinsAndKeepsIt) {
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  Stream same_ip = MakeStream(kSdpIpOtherPort, 0x77);
  same_ip.Send(latch, Ms(0));  // one packet, then nothing
  Stream anywhere = MakeStream("192.0.2.80:5000", 0x66);
  std::optional<int64_t> latched_at;
  for (int64_t t = 10; t < 4000 && !latched_at; t += 20) {
    if (anywhere.Send(latch, Ms(t)).event == LatchEvent::kLatched) latched_at = t;
  }
  ASSERT_TRUE(latched_at.has_value());
  EXPECT_GE(*latched_at, 3000) << "blocked by the better-ranked candidate for the learning window";
  // After the window a better rank no longer takes over an active lock.
  for (int i = 0; i < 10; ++i) {
    anywhere.Send(latch, Ms(*latched_at + 20 + 20 * i));
    EXPECT_FALSE(same_ip.Send(latch, Ms(*latched_at + 30 + 20 * i)).forward);
  }
  EXPECT_EQ(latch.latched_source(), Addr("192.0.2.80:5000"));
}

TEST(LatchTest, NewLearningWindowAllowsUpgrade) {
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  Stream anywhere = MakeStream("192.0.2.80:5000", 0x66);
  for (int64_t t = 0; t < 4000; t += 20) anywhere.Send(latch, Ms(t));
  ASSERT_EQ(latch.latched_source(), Addr("192.0.2.80:5000"));
  latch.Configure(Policy(v1::LATCHING_MODE_HEURISTIC), PublicTarget(), Ms(4000));  // re-INVITE, same SDP
  EXPECT_EQ(latch.latched_source(), Addr("192.0.2.80:5000")) << "unchanged SDP keeps the lock";
  Stream exact = MakeStream(kSdp, 0x20);
  EXPECT_EQ(exact.Send(latch, Ms(4010)).event, LatchEvent::kRelatched);
}

// ---------------------------------------------------------------------------------------------
// Attack 8: STRICT.

TEST(LatchTest, StrictForwardsOnlyTheSdpAddress) {
  // STRICT is an operator's choice (e.g. a trunk on a private network): the SDP address is used
  // whether or not it would be sendable before latching.
  Latch latch = Configured(v1::LATCHING_MODE_STRICT, Target("10.1.2.3:30000", "10.1.2.3", false));
  EXPECT_EQ(latch.Destination(), Addr("10.1.2.3:30000"));
  Stream trunk = MakeStream("10.1.2.3:30000", 1);
  Stream other_port = MakeStream("10.1.2.3:30002", 2);
  Stream attacker = MakeStream(kAttacker, 3);
  Tally ok, bad;
  for (int i = 0; i < 300; ++i) {
    ok.Add(trunk.Send(latch, Ms(20 * i)));
    bad.Add(other_port.Send(latch, Ms(20 * i + 5)));
    bad.Add(attacker.Send(latch, Ms(20 * i + 10)));
  }
  EXPECT_EQ(ok.forwarded, 300);
  EXPECT_EQ(ok.latched, 0);
  EXPECT_EQ(bad.forwarded, 0);
  EXPECT_EQ(bad.drop(DropReason::kStrict), 600);
  EXPECT_FALSE(latch.latched());
  EXPECT_EQ(latch.Destination(), Addr("10.1.2.3:30000"));
  EXPECT_TRUE(latch.OnRtcp(Addr("10.1.2.3:30001"), Ms(7000)).forward);
  EXPECT_EQ(latch.OnRtcp(Addr("192.0.2.66:30001"), Ms(7000)).reason, DropReason::kStrict);
}

TEST(LatchTest, StrictWithoutSdpForwardsNothing) {
  Latch latch = Configured(v1::LATCHING_MODE_STRICT, Target(std::nullopt, kNatIp, false));
  EXPECT_FALSE(latch.Destination().has_value());
  EXPECT_EQ(latch.OnRtp(Addr(kNatSource), Rtp(1, 1), kT0).reason, DropReason::kStrict);
}

TEST(LatchTest, SwitchingToStrictReleasesTheLock) {
  Stream endpoint = MakeStream(kNatSource, 1);
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, Target(kSdp, kNatIp, true));
  for (int i = 0; i < 4; ++i) endpoint.Send(latch, Ms(20 * i));
  ASSERT_TRUE(latch.latched());
  latch.Configure(Policy(v1::LATCHING_MODE_STRICT), Target(kSdp, kNatIp, true), Ms(100));
  EXPECT_FALSE(latch.latched());
  EXPECT_EQ(latch.Destination(), Addr(kSdp));
  EXPECT_EQ(endpoint.Send(latch, Ms(120)).reason, DropReason::kStrict);
}

// ---------------------------------------------------------------------------------------------
// Attack 9: signalled change.

TEST(LatchTest, SignalledChangeReopensLearningAndOldSourceIsStale) {
  Stream old_path = MakeStream(kSdp, 0x1);
  Latch latch = LatchedOnSdp(v1::LATCHING_MODE_HEURISTIC, old_path);
  for (int i = 1; i < 250; ++i) old_path.Send(latch, Ms(20 * i));

  // re-INVITE: the endpoint moved to a new public address.
  const char kNewSdp[] = "198.51.100.20:40000";
  latch.Configure(Policy(v1::LATCHING_MODE_HEURISTIC), Target(kNewSdp, "198.51.100.20", true), Ms(5000));
  EXPECT_FALSE(latch.latched());
  EXPECT_EQ(latch.Destination(), Addr(kNewSdp));

  // Late packets from the old path: dropped quietly as stale, RTCP too.
  Tally stale;
  for (int64_t t = 5010; t < 5300; t += 20) stale.Add(old_path.Send(latch, Ms(t)));
  EXPECT_EQ(latch.OnRtcp(Addr("203.0.113.5:30001"), Ms(5295)).reason, DropReason::kStale);

  // The new address latches at once: a fresh lock, not a relatch.
  Stream new_path = MakeStream(kNewSdp, 0x2);
  const LatchDecision d = new_path.Send(latch, Ms(5300));
  EXPECT_TRUE(d.forward);
  EXPECT_EQ(d.event, LatchEvent::kLatched);
  EXPECT_EQ(latch.relatch_count(), 0u);

  // Still stale while the grace lasts, with the new lock in place.
  for (int64_t t = 5310; t < 5500; t += 20) stale.Add(old_path.Send(latch, Ms(t)));
  EXPECT_EQ(latch.OnRtcp(Addr("203.0.113.5:30001"), Ms(5495)).reason, DropReason::kStale);
  EXPECT_EQ(stale.forwarded, 0);
  EXPECT_EQ(stale.drop(DropReason::kStale), 25);
  EXPECT_EQ(stale.total_drops(), 25);

  // After the grace the old source is just another source.
  const LatchDecision after = old_path.Send(latch, Ms(5520));
  EXPECT_FALSE(after.forward);
  EXPECT_EQ(after.reason, DropReason::kWrongSource);
}

TEST(LatchTest, SignalledChangeRestartsProbation) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  Stream endpoint = MakeStream(kNatSource, 1);
  for (int i = 0; i < 3; ++i) endpoint.Send(latch, Ms(20 * i));
  latch.Configure(Policy(v1::LATCHING_MODE_FIRST_PACKET), Target("10.0.0.6:4000", kNatIp, false), Ms(50));
  EXPECT_EQ(endpoint.Send(latch, Ms(60)).reason, DropReason::kProbation) << "progress from before is forgotten";
  for (int i = 0; i < 2; ++i) EXPECT_FALSE(endpoint.Send(latch, Ms(80 + 20 * i)).forward);
  EXPECT_TRUE(endpoint.Send(latch, Ms(120)).forward);
}

TEST(LatchTest, SignalledAddressEqualToLatchedSourceKeepsLock) {
  Latch latch = Configured(v1::LATCHING_MODE_SIGNALING_SOURCE, NatTarget());
  Stream endpoint = MakeStream(kNatSource, 1);
  for (int i = 0; i < 4; ++i) endpoint.Send(latch, Ms(20 * i));
  ASSERT_TRUE(latch.latched());
  // The endpoint learned its public address (STUN) and announces it in a re-INVITE.
  latch.Configure(Policy(v1::LATCHING_MODE_SIGNALING_SOURCE), Target(kNatSource, kNatIp, true), Ms(100));
  EXPECT_EQ(latch.latched_source(), Addr(kNatSource));
  EXPECT_TRUE(endpoint.Send(latch, Ms(120)).forward);
}

TEST(LatchTest, NewSignalingIpReleasesLockOnOldIp) {
  Latch latch = Configured(v1::LATCHING_MODE_SIGNALING_SOURCE, NatTarget());
  Stream endpoint = MakeStream(kNatSource, 1);
  for (int i = 0; i < 4; ++i) endpoint.Send(latch, Ms(20 * i));
  ASSERT_TRUE(latch.latched());
  latch.Configure(Policy(v1::LATCHING_MODE_SIGNALING_SOURCE), Target(kPrivateSdp, "192.0.2.200", false), Ms(100));
  EXPECT_FALSE(latch.latched());
  EXPECT_EQ(endpoint.Send(latch, Ms(120)).reason, DropReason::kStale);
  EXPECT_EQ(endpoint.Send(latch, Ms(700)).reason, DropReason::kNotSignalingIp);
  Stream moved = MakeStream("192.0.2.200:7000", 2);
  Tally tally;
  for (int i = 0; i < 4; ++i) tally.Add(moved.Send(latch, Ms(720 + 20 * i)));
  EXPECT_EQ(tally.latched, 1);
}

// ---------------------------------------------------------------------------------------------
// Attack 10: relatch rate limit.

TEST(LatchTest, RebindingIsRateLimited) {
  Stream endpoint = MakeStream(kSdp, 0x1234);
  Latch latch = LatchedOnSdp(v1::LATCHING_MODE_HEURISTIC, endpoint);
  for (int64_t t = 20; t < 200; t += 20) endpoint.Send(latch, Ms(t));

  // Rebinding 200 ms after the lock: refused until relatch_min_interval (1 s) has passed.
  endpoint.source = Addr("203.0.113.5:30002");
  Tally tally;
  std::optional<int64_t> relatched_at;
  for (int64_t t = 200; t < 1500 && !relatched_at; t += 20) {
    const LatchDecision d = endpoint.Send(latch, Ms(t));
    tally.Add(d);
    if (d.event == LatchEvent::kRelatched) relatched_at = t;
  }
  ASSERT_TRUE(relatched_at.has_value());
  EXPECT_EQ(*relatched_at, 1000);
  EXPECT_EQ(tally.drop(DropReason::kWrongSource), 40);

  // And again right away: refused for another second.
  endpoint.source = Addr("203.0.113.5:30004");
  relatched_at.reset();
  for (int64_t t = 1020; t < 2500 && !relatched_at; t += 20) {
    const LatchDecision d = endpoint.Send(latch, Ms(t));
    if (d.event == LatchEvent::kRelatched) relatched_at = t;
    if (!relatched_at) {
      EXPECT_FALSE(d.forward);
    }
  }
  ASSERT_TRUE(relatched_at.has_value());
  EXPECT_EQ(*relatched_at, 2000);
  EXPECT_EQ(latch.relatch_count(), 2u);
}

TEST(LatchTest, SilenceRelatchIsRateLimited) {
  LatchPolicy policy = Policy(v1::LATCHING_MODE_FIRST_PACKET);
  policy.relatch_min_interval = absl::Seconds(5);
  Latch latch;
  latch.Configure(policy, NatTarget(), kT0);
  Stream first = MakeStream(kNatSource, 1);
  for (int i = 0; i < 4; ++i) first.Send(latch, Ms(20 * i));
  ASSERT_TRUE(latch.latched());  // at t = 60 ms; silent afterwards

  Stream second = MakeStream("192.0.2.200:6000", 2);
  std::optional<int64_t> relatched_at;
  for (int64_t t = 100; t < 8000 && !relatched_at; t += 20) {
    const LatchDecision d = second.Send(latch, Ms(t));
    if (d.event == LatchEvent::kRelatched) relatched_at = t;
    if (!relatched_at) {
      EXPECT_FALSE(d.forward);
    }
  }
  ASSERT_TRUE(relatched_at.has_value());
  EXPECT_EQ(*relatched_at, 5060) << "silence and probation were done by 2.1 s; the rate limit holds it";
}

// ---------------------------------------------------------------------------------------------
// Attack 11: a wrong source spends at most probation_packets - 1 packets "in probation" and never
// gets one forwarded.

enum class Scenario { kLockedAndActive, kBetterRankedProving, kSignalingSource };

struct BoundCase {
  Scenario scenario;
  uint32_t probation;
};

std::string BoundCaseName(const ::testing::TestParamInfo<BoundCase>& info) {
  const char* scenario = info.param.scenario == Scenario::kLockedAndActive       ? "LockedAndActive"
                         : info.param.scenario == Scenario::kBetterRankedProving ? "BetterRankedProving"
                                                                                 : "SignalingSource";
  return std::string(scenario) + "Probation" + std::to_string(info.param.probation);
}

void PrintTo(const BoundCase& c, std::ostream* os) { *os << static_cast<int>(c.scenario) << "/" << c.probation; }

class ProbationBoundTest : public ::testing::TestWithParam<BoundCase> {};

TEST_P(ProbationBoundTest, WrongSourceNeverForwarded) {
  const BoundCase c = GetParam();
  LatchPolicy policy = Policy(c.scenario == Scenario::kSignalingSource ? v1::LATCHING_MODE_SIGNALING_SOURCE
                                                                        : v1::LATCHING_MODE_HEURISTIC);
  policy.probation_packets = c.probation;
  Latch latch;
  latch.Configure(policy, c.scenario == Scenario::kSignalingSource ? NatTarget() : PublicTarget(), kT0);

  // The real endpoint sends at 50 pps, offset 10 ms behind the attacker's own in-sequence 50 pps.
  Stream endpoint = MakeStream(c.scenario == Scenario::kLockedAndActive     ? kSdp
                               : c.scenario == Scenario::kBetterRankedProving ? kSdpIpOtherPort
                                                                             : kNatSource,
                               0x600d);
  Stream attacker = MakeStream(kAttacker, 0xbad);
  if (c.scenario == Scenario::kLockedAndActive) endpoint.Send(latch, kT0 - absl::Milliseconds(10));
  Tally bad;
  for (int i = 0; i < 500; ++i) {
    bad.Add(attacker.Send(latch, Ms(20 * i)));
    endpoint.Send(latch, Ms(20 * i + 10));
  }
  EXPECT_EQ(bad.forwarded, 0);
  EXPECT_EQ(bad.latched + bad.relatched, 0);
  EXPECT_LE(bad.drop(DropReason::kProbation), static_cast<int>(c.probation) - 1);
  EXPECT_EQ(latch.latched_source(), endpoint.source);
}

INSTANTIATE_TEST_SUITE_P(
    Scenarios, ProbationBoundTest,
    ::testing::Values(BoundCase{Scenario::kLockedAndActive, 2}, BoundCase{Scenario::kLockedAndActive, 4},
                      BoundCase{Scenario::kLockedAndActive, 8}, BoundCase{Scenario::kBetterRankedProving, 2},
                      BoundCase{Scenario::kBetterRankedProving, 4}, BoundCase{Scenario::kBetterRankedProving, 8},
                      BoundCase{Scenario::kSignalingSource, 2}, BoundCase{Scenario::kSignalingSource, 4},
                      BoundCase{Scenario::kSignalingSource, 8}),
    BoundCaseName);

TEST(LatchTest, HeldCandidateCannotBankProbationDuringCall) {
  // An attacker streaming alongside the call has proven nothing when the endpoint pauses (hold):
  // it needs relatch_silence and then a full probation.
  Stream endpoint = MakeStream(kNatSource, 1);
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  for (int i = 0; i < 4; ++i) endpoint.Send(latch, Ms(20 * i));
  Stream attacker = MakeStream(kAttacker, 2);
  int64_t t = 80;
  for (; t < 5000; t += 20) {
    endpoint.Send(latch, Ms(t));
    EXPECT_FALSE(attacker.Send(latch, Ms(t + 10)).forward);
  }
  const int64_t last_endpoint = t - 20;
  std::optional<int64_t> relatched_at;
  for (; t < 9000 && !relatched_at; t += 20) {
    if (attacker.Send(latch, Ms(t + 10)).forward) relatched_at = t + 10;
  }
  ASSERT_TRUE(relatched_at.has_value());
  EXPECT_GE(*relatched_at, last_endpoint + 2000 + 3 * 20);
}

// ---------------------------------------------------------------------------------------------
// RTCP

TEST(LatchTest, RtcpBeforeLatchOnlyFromSendableSdpIp) {
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  EXPECT_TRUE(latch.OnRtcp(Addr("203.0.113.5:30001"), kT0).forward);
  EXPECT_EQ(latch.OnRtcp(Addr("192.0.2.66:30001"), kT0).reason, DropReason::kProbation);

  Latch nat = Configured(v1::LATCHING_MODE_HEURISTIC, NatTarget());
  EXPECT_FALSE(nat.OnRtcp(Addr("10.0.0.5:4001"), kT0).forward);
  EXPECT_FALSE(nat.OnRtcp(Addr("198.51.100.7:50001"), kT0).forward) << "not before a lock";
}

TEST(LatchTest, RtcpNeverLatches) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  for (int i = 0; i < 100; ++i) latch.OnRtcp(Addr("198.51.100.7:50001"), Ms(20 * i));
  EXPECT_FALSE(latch.latched());
  EXPECT_FALSE(latch.Destination().has_value());
}

TEST(LatchTest, RtcpAfterLatchFromLatchedIpAnyPort) {
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, Target(kSdp, kNatIp, true));
  Stream endpoint = MakeStream(kNatSource, 1);
  for (int i = 0; i < 4; ++i) endpoint.Send(latch, Ms(20 * i));
  ASSERT_TRUE(latch.latched());
  EXPECT_TRUE(latch.OnRtcp(Addr("198.51.100.7:50001"), Ms(100)).forward);
  EXPECT_TRUE(latch.OnRtcp(Addr("198.51.100.7:61000"), Ms(100)).forward);
  EXPECT_EQ(latch.OnRtcp(Addr("203.0.113.5:30001"), Ms(100)).reason, DropReason::kWrongSource)
      << "the SDP IP no longer speaks for the endpoint";
  EXPECT_EQ(latch.OnRtcp(Addr("192.0.2.66:50001"), Ms(100)).reason, DropReason::kWrongSource);
}

// ---------------------------------------------------------------------------------------------
// SdpSendable

struct SendableCase {
  std::string name;
  std::string sdp;
  bool allow_loopback;
  bool sendable;
};

void PrintTo(const SendableCase& c, std::ostream* os) { *os << c.name; }

class SdpSendableTest : public ::testing::TestWithParam<SendableCase> {};

TEST_P(SdpSendableTest, Decides) {
  const std::vector<net::IpAddress> own = {Ip("203.0.113.10"), Ip("2001:db8::10")};
  EXPECT_EQ(SdpSendable(Addr(GetParam().sdp), own, 30000, 40000, GetParam().allow_loopback), GetParam().sendable);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, SdpSendableTest,
    ::testing::Values(
        SendableCase{"PublicV4", "198.51.100.7:5004", false, true},
        SendableCase{"PublicV6", "[2001:db8::7]:5004", false, true},
        SendableCase{"Rfc1918Ten", "10.0.0.5:5004", false, false},
        SendableCase{"Rfc1918OneNineTwo", "192.168.1.20:5004", false, false},
        SendableCase{"Rfc1918OneSevenTwo", "172.16.4.4:5004", false, false},
        SendableCase{"CarrierGradeNat", "100.64.1.1:5004", false, false},
        SendableCase{"LinkLocal", "169.254.1.1:5004", false, false},
        SendableCase{"UniqueLocalV6", "[fd00::1]:5004", false, false},
        SendableCase{"LinkLocalV6", "[fe80::1]:5004", false, false},
        SendableCase{"V4MappedPrivate", "[::ffff:10.0.0.5]:5004", false, false},
        SendableCase{"LoopbackRefused", "127.0.0.1:5004", false, false},
        SendableCase{"LoopbackAllowed", "127.0.0.1:5004", true, true},
        SendableCase{"LoopbackV6Allowed", "[::1]:5004", true, true},
        SendableCase{"UnspecifiedV4", "0.0.0.0:5004", false, false},
        SendableCase{"UnspecifiedV6", "[::]:5004", false, false},
        SendableCase{"ThisNetwork", "0.1.2.3:5004", false, false},
        SendableCase{"Multicast", "224.0.0.1:5004", false, false},
        SendableCase{"Broadcast", "255.255.255.255:5004", false, false},
        SendableCase{"MulticastV6", "[ff02::1]:5004", false, false},
        SendableCase{"OwnIpInRange", "203.0.113.10:30002", false, false},
        SendableCase{"OwnIpRangeLow", "203.0.113.10:30000", false, false},
        SendableCase{"OwnIpRangeHigh", "203.0.113.10:40000", false, false},
        SendableCase{"OwnIpBelowRange", "203.0.113.10:29999", false, true},
        SendableCase{"OwnIpAboveRange", "203.0.113.10:40001", false, true},
        SendableCase{"OwnV6InRange", "[2001:db8::10]:35000", false, false},
        SendableCase{"OwnV4MappedInRange", "[::ffff:203.0.113.10]:35000", false, false}),
    [](const ::testing::TestParamInfo<SendableCase>& info) { return info.param.name; });

TEST(SdpSendableEdgeTest, PortZeroNeverSendable) {
  net::SocketAddress address = Addr("198.51.100.7:5004");
  address.port = 0;
  EXPECT_FALSE(SdpSendable(address, {}, 30000, 40000, false));
}

TEST(SdpSendableEdgeTest, WildcardOwnAddressProtectsLoopback) {
  // A relay bound to 0.0.0.0 in the local demo: 127.0.0.1 in its range is itself.
  const std::vector<net::IpAddress> own = {Ip("0.0.0.0")};
  EXPECT_FALSE(SdpSendable(Addr("127.0.0.1:30002"), own, 30000, 40000, true));
  EXPECT_TRUE(SdpSendable(Addr("127.0.0.1:5004"), own, 30000, 40000, true));
  EXPECT_TRUE(SdpSendable(Addr("198.51.100.7:30002"), own, 30000, 40000, true));
}

}  // namespace
}  // namespace latchkey::relay
