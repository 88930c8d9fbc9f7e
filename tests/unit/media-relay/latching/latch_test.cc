#include "media-relay/latching/latch.h"

#include <array>
#include <cstdint>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

RtpHeader Rtp(uint32_t ssrc, uint16_t seq, uint32_t timestamp) {
  RtpHeader rtp;
  rtp.ssrc = ssrc;
  rtp.sequence = seq;
  rtp.timestamp = timestamp;
  rtp.header_length = 12;
  rtp.payload_length = 160;
  return rtp;
}

// The endpoint announced a public address and sends from it.
const char kSdp[] = "203.0.113.5:30000";
const char kSdpIp[] = "203.0.113.5";
// Same IP, other port: the endpoint after a NAT rebinding, or a neighbour behind the same CGNAT IP.
const char kSdpIpOtherPort[] = "203.0.113.5:31000";
// An endpoint behind NAT: private SDP, media from the NAT's public address, which is also where its
// SIP came from.
const char kPrivateSdp[] = "10.0.0.5:4000";
const char kNatSource[] = "198.51.100.7:50000";
const char kNatIp[] = "198.51.100.7";
const char kNatOtherPort[] = "198.51.100.7:50002";
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
LatchTarget PublicTarget() { return Target(kSdp, kSdpIp, true); }
// A NATed endpoint: private SDP (not sendable), signalling from the NAT's IP.
LatchTarget NatTarget() { return Target(kPrivateSdp, kNatIp, false); }

// One RTP stream: a source, an SSRC, a running sequence number and a timestamp at 8 kHz, 20 ms.
struct Stream {
  net::SocketAddress source;
  uint32_t ssrc;
  uint16_t seq = 1000;
  uint32_t timestamp = 160'000;

  LatchDecision Send(Latch& latch, absl::Time now) {
    const RtpHeader rtp = Rtp(ssrc, seq++, timestamp);
    timestamp += 160;
    return latch.OnRtp(source, rtp, now);
  }
  // The next packet of `other`'s stream (an on-path attacker who saw it), sent from here.
  void Mirror(const Stream& other, uint16_t ahead = 1) {
    ssrc = other.ssrc;
    seq = static_cast<uint16_t>(other.seq + ahead - 1);
    timestamp = other.timestamp + 160u * (ahead - 1);
  }
};

Stream MakeStream(const std::string& source, uint32_t ssrc, uint16_t seq = 1000) {
  return Stream{Addr(source), ssrc, seq};
}

// Per-source outcome of a run.
struct Tally {
  int forwarded = 0;
  int latched = 0;
  int relatched = 0;
  int contested = 0;
  std::array<int, static_cast<size_t>(DropReason::kCount)> drops{};

  void Add(const LatchDecision& d) {
    if (d.forward) {
      ++forwarded;
      EXPECT_EQ(d.reason, DropReason::kNone);
    } else {
      EXPECT_NE(d.reason, DropReason::kNone);
      EXPECT_TRUE(d.event == LatchEvent::kNone || d.event == LatchEvent::kContested)
          << "a dropped packet never latches";
      ++drops[static_cast<size_t>(d.reason)];
    }
    if (d.event == LatchEvent::kLatched) ++latched;
    if (d.event == LatchEvent::kRelatched) ++relatched;
    if (d.event == LatchEvent::kContested) ++contested;
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

// Sends `n` packets of `stream`, `step_ms` apart from `start_ms`; returns the tally.
Tally SendRun(Latch& latch, Stream& stream, int64_t start_ms, int n, int64_t step_ms = 20) {
  Tally tally;
  for (int i = 0; i < n; ++i) tally.Add(stream.Send(latch, Ms(start_ms + i * step_ms)));
  return tally;
}

const v1::LatchingMode kLearningModes[] = {v1::LATCHING_MODE_FIRST_PACKET, v1::LATCHING_MODE_SIGNALING_SOURCE,
                                           v1::LATCHING_MODE_HEURISTIC};
// The modes control chooses by default (NAT: SIGNALING_SOURCE, else HEURISTIC).
const v1::LatchingMode kDefaultModes[] = {v1::LATCHING_MODE_SIGNALING_SOURCE, v1::LATCHING_MODE_HEURISTIC};

std::string ModeName(const ::testing::TestParamInfo<v1::LatchingMode>& info) {
  return v1::LatchingMode_Name(info.param);
}

// Sends `stream` every `step_ms` from `start_ms` until it latches (at most `limit` packets);
// returns the 1-based index of the packet that latched, or -1.
int PacketsToLatch(Latch& latch, Stream& stream, int64_t start_ms, int64_t step_ms = 20, int limit = 500) {
  for (int i = 0; i < limit; ++i) {
    const LatchDecision d = stream.Send(latch, Ms(start_ms + i * step_ms));
    if (d.event == LatchEvent::kLatched || d.event == LatchEvent::kRelatched) return i + 1;
  }
  return -1;
}

// Latched on the exact SDP address at t=0.
Latch LatchedOnSdp(v1::LatchingMode mode, Stream& endpoint) {
  Latch latch = Configured(mode, PublicTarget());
  const LatchDecision d = endpoint.Send(latch, kT0);
  EXPECT_TRUE(d.forward);
  EXPECT_EQ(d.event, LatchEvent::kLatched);
  return latch;
}

// A NATed endpoint latched after probation (4 packets, t = 0..60 ms).
Latch LatchedBehindNat(v1::LatchingMode mode, Stream& endpoint) {
  Latch latch = Configured(mode, NatTarget());
  EXPECT_EQ(PacketsToLatch(latch, endpoint, 0), 4);
  return latch;
}

// ---------------------------------------------------------------------------------------------
// Basics

TEST(LatchTest, SizeIsBounded) { EXPECT_LE(sizeof(Latch), 320u); }

TEST(LatchTest, FirstPacketLatchesAfterProbation) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  Stream s = MakeStream("192.0.2.10:5000", 7);
  for (int i = 0; i < 3; ++i) {
    const LatchDecision d = s.Send(latch, Ms(i * 20));
    EXPECT_FALSE(d.forward);
    EXPECT_EQ(d.reason, DropReason::kProbation);
  }
  EXPECT_FALSE(latch.latched());
  const LatchDecision d = s.Send(latch, Ms(60));
  EXPECT_TRUE(d.forward);
  EXPECT_EQ(d.event, LatchEvent::kLatched);
  EXPECT_EQ(latch.latched_source(), s.source);
  EXPECT_EQ(latch.latched_ssrc(), 7u);
  EXPECT_EQ(s.Send(latch, Ms(80)).event, LatchEvent::kNone);
}

TEST(LatchTest, ProbationRestartsOnSequenceGap) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  Stream s = MakeStream("192.0.2.10:5000", 7);
  SendRun(latch, s, 0, 3);
  ++s.seq;  // one lost: the run starts again
  EXPECT_EQ(PacketsToLatch(latch, s, 60), 4);
}

TEST(LatchTest, ProbationRestartsOnSsrcChange) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  Stream s = MakeStream("192.0.2.10:5000", 7);
  SendRun(latch, s, 0, 3);
  s.ssrc = 8;
  EXPECT_EQ(PacketsToLatch(latch, s, 60), 4);
}

TEST(LatchTest, ProbationRestartsWhenTimestampGoesBack) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  Stream s = MakeStream("192.0.2.10:5000", 7);
  SendRun(latch, s, 0, 3);
  s.timestamp -= 8000;  // a forged sequence with an unrelated timestamp
  EXPECT_EQ(PacketsToLatch(latch, s, 60), 4);
}

TEST(LatchTest, SameTimestampIsInOrder) {
  // Video: the packets of one frame share a timestamp.
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  Stream s = MakeStream("192.0.2.10:5000", 7);
  for (int i = 0; i < 4; ++i) {
    const LatchDecision d = latch.OnRtp(s.source, Rtp(7, static_cast<uint16_t>(100 + i), 5000), Ms(i * 5));
    EXPECT_EQ(d.forward, i == 3);
  }
}

TEST(LatchTest, ProbationRestartsAfterALongGap) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  Stream s = MakeStream("192.0.2.10:5000", 7);
  SendRun(latch, s, 0, 3);
  EXPECT_EQ(PacketsToLatch(latch, s, 40 + 300), 4);  // 300 ms > max_gap
}

TEST(LatchTest, SlowInSequenceSprayerNeverPassesProbation) {
  // One in-sequence packet per second per port: never close enough together to pass.
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  Stream s = MakeStream("192.0.2.10:5000", 7);
  const Tally t = SendRun(latch, s, 0, 120, 1000);
  EXPECT_EQ(t.forwarded, 0);
  EXPECT_EQ(t.drop(DropReason::kProbation), 120);
  EXPECT_FALSE(latch.latched());
}

TEST(LatchTest, FloodNeverPassesProbation) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  Stream s = MakeStream("192.0.2.10:5000", 7);
  const Tally t = SendRun(latch, s, 0, 5000, 1);  // 1000 pps, below min_interarrival
  EXPECT_EQ(t.forwarded, 0);
  EXPECT_GT(t.drop(DropReason::kTooFast), 4900);
}

TEST(LatchTest, SequenceWrapIsInSequence) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  Stream s = MakeStream("192.0.2.10:5000", 7, 65534);
  EXPECT_EQ(PacketsToLatch(latch, s, 0), 4);
}

class ExactSdpTest : public ::testing::TestWithParam<v1::LatchingMode> {};
INSTANTIATE_TEST_SUITE_P(Modes, ExactSdpTest, ::testing::ValuesIn(kLearningModes), ModeName);

TEST_P(ExactSdpTest, LatchesOnFirstPacket) {
  Stream endpoint = MakeStream(kSdp, 1);
  Latch latch = LatchedOnSdp(GetParam(), endpoint);
  EXPECT_EQ(latch.latched_source(), Addr(kSdp));
  EXPECT_EQ(latch.Destination(), Addr(kSdp));
}

TEST(LatchTest, V4MappedSourceMatchesV4Sdp) {
  Latch latch = Configured(v1::LATCHING_MODE_SIGNALING_SOURCE, PublicTarget());
  Stream s = MakeStream("[::ffff:203.0.113.5]:30000", 1);
  EXPECT_EQ(s.Send(latch, kT0).event, LatchEvent::kLatched);
}

TEST(LatchTest, DestinationBeforeLatching) {
  EXPECT_EQ(Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget()).Destination(), Addr(kSdp));
  EXPECT_EQ(Configured(v1::LATCHING_MODE_HEURISTIC, NatTarget()).Destination(), std::nullopt);
}

TEST(LatchTest, LastPacketIsLastForwarded) {
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  EXPECT_EQ(latch.last_packet(), absl::InfinitePast());
  Stream endpoint = MakeStream(kSdp, 1);
  SendRun(latch, endpoint, 0, 3);
  EXPECT_EQ(latch.last_packet(), Ms(40));
  Stream other = MakeStream(kAttacker, 2);
  SendRun(latch, other, 100, 10);
  EXPECT_EQ(latch.last_packet(), Ms(40));
}

TEST(LatchTest, DropReasonNamesAreDistinct) {
  std::vector<std::string> names;
  for (size_t r = 0; r < static_cast<size_t>(DropReason::kCount); ++r) {
    const std::string name(DropReasonName(static_cast<DropReason>(r)));
    EXPECT_NE(name, "unknown");
    for (const std::string& seen : names) EXPECT_NE(seen, name);
    names.push_back(name);
  }
}

// ---------------------------------------------------------------------------------------------
// Rule 1: a leg whose port the endpoint has not been told yet

TEST(LatchTest, ClosedLegTracksNothingAndOpensWithNoHistory) {
  LatchTarget closed = PublicTarget();
  closed.open = false;
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, closed);
  Stream sprayer = MakeStream(kAttacker, 9);
  Stream endpoint = MakeStream(kSdp, 1);
  const Tally t = SendRun(latch, sprayer, 0, 500);  // the whole time the call rings
  EXPECT_EQ(t.drop(DropReason::kPortNotAnnounced), 500);
  EXPECT_EQ(endpoint.Send(latch, Ms(10'000)).reason, DropReason::kPortNotAnnounced);
  // Media towards the caller (early media) is not affected.
  EXPECT_EQ(latch.Destination(), Addr(kSdp));

  latch.Configure(Policy(v1::LATCHING_MODE_FIRST_PACKET), PublicTarget(), Ms(10'010));
  // Nothing banked while closed: the sprayer starts its probation from zero, the endpoint latches
  // on its first packet.
  EXPECT_EQ(sprayer.Send(latch, Ms(10'020)).reason, DropReason::kProbation);
  EXPECT_EQ(endpoint.Send(latch, Ms(10'030)).event, LatchEvent::kLatched);
}

TEST(LatchTest, ExpectedSsrcIsTheOnlyOneThatLatches) {
  LatchTarget target = NatTarget();
  target.expected_ssrc = 1234;
  Latch latch = Configured(v1::LATCHING_MODE_SIGNALING_SOURCE, target);
  Stream neighbour = MakeStream(kNatOtherPort, 999);  // same CGNAT IP, its own stream
  const Tally t = SendRun(latch, neighbour, 0, 100);
  EXPECT_EQ(t.drop(DropReason::kWrongSsrc), 100);
  Stream endpoint = MakeStream(kNatSource, 1234);
  EXPECT_EQ(PacketsToLatch(latch, endpoint, 5), 4);
}

// ---------------------------------------------------------------------------------------------
// Attacks (docs/SECURITY.md): each bullet of the threat model against the pure state machine.
// The "far end" sends towards this leg's endpoint every 20 ms; bleed counts those sends whose
// destination is an attacker's address.

struct Outcome {
  int bleed = 0;     // far-end packets sent to an attacker
  int injected = 0;  // attacker packets forwarded
  int contests = 0;
};

bool IsAttackerIp(const net::SocketAddress& address, const std::vector<net::IpAddress>& attacker_ips) {
  for (const net::IpAddress& ip : attacker_ips) {
    if (address.ip == ip) return true;
  }
  return false;
}

void FarEndSends(Latch& latch, absl::Time now, const std::vector<net::IpAddress>& attacker_ips, Outcome& out) {
  if (latch.AdmitSend(now) != DropReason::kNone) return;
  if (auto destination = latch.Destination(); destination && IsAttackerIp(*destination, attacker_ips)) ++out.bleed;
}

struct AttackCase {
  std::string name;
  v1::LatchingMode mode;
  bool nat;  // NAT target (private SDP) or public endpoint
};

void PrintTo(const AttackCase& c, std::ostream* os) { *os << c.name; }

std::vector<AttackCase> DefaultModeCases() {
  std::vector<AttackCase> out;
  for (v1::LatchingMode mode : kDefaultModes) {
    for (bool nat : {false, true}) {
      out.push_back({absl::StrCat(v1::LatchingMode_Name(mode), nat ? "_Nat" : "_Public"), mode, nat});
    }
  }
  return out;
}
std::vector<AttackCase> AllModeCases() {
  std::vector<AttackCase> out = DefaultModeCases();
  out.push_back({"LATCHING_MODE_FIRST_PACKET_Public", v1::LATCHING_MODE_FIRST_PACKET, false});
  out.push_back({"LATCHING_MODE_FIRST_PACKET_Nat", v1::LATCHING_MODE_FIRST_PACKET, true});
  return out;
}

class AttackTest : public ::testing::TestWithParam<AttackCase> {
 protected:
  LatchTarget target() const { return GetParam().nat ? NatTarget() : PublicTarget(); }
  Stream endpoint() const { return MakeStream(GetParam().nat ? kNatSource : kSdp, 0x1111); }
  // The endpoint latched at t = 0..60 ms.
  Latch Latched(Stream& phone) const {
    Latch latch = Configured(GetParam().mode, target());
    SendRun(latch, phone, 0, 4);
    EXPECT_TRUE(latch.latched());
    return latch;
  }
  const std::vector<net::IpAddress> attacker_ips = {Ip("192.0.2.66")};
};

class AnyModeAttackTest : public AttackTest {};
INSTANTIATE_TEST_SUITE_P(Cases, AnyModeAttackTest, ::testing::ValuesIn(AllModeCases()),
                         [](const auto& info) { return info.param.name; });
class DefaultModeAttackTest : public AttackTest {};
INSTANTIATE_TEST_SUITE_P(Cases, DefaultModeAttackTest, ::testing::ValuesIn(DefaultModeCases()),
                         [](const auto& info) { return info.param.name; });

// The attack the issue reproduced: after the latch, 120 packets/s carrying the phone's SSRC and the
// next sequence number, from another address, while the phone talks.
TEST_P(AnyModeAttackTest, OnPathAttackerGetsNothingWhileTheEndpointTalks) {
  Stream phone = endpoint();
  Latch latch = Latched(phone);
  Stream attacker = MakeStream(kAttacker, 0);
  Outcome out;
  for (int ms = 80; ms < 5'000; ++ms) {
    if (ms % 20 == 0) {
      EXPECT_TRUE(phone.Send(latch, Ms(ms)).forward);
      FarEndSends(latch, Ms(ms), attacker_ips, out);
    }
    if (ms % 8 == 0) {
      attacker.Mirror(phone);
      out.injected += attacker.Send(latch, Ms(ms)).forward;
    }
  }
  EXPECT_EQ(out.injected, 0);
  EXPECT_EQ(out.bleed, 0);
  EXPECT_EQ(latch.latched_source(), phone.source);
}

// The endpoint pauses (DTX, a one-way announcement) for 10 s: an on-path attacker from another IP,
// continuing the stream perfectly, still gets nothing in the modes control chooses.
TEST_P(DefaultModeAttackTest, OnPathAttackerGetsNothingWhileTheEndpointIsSilent) {
  Stream phone = endpoint();
  Latch latch = Latched(phone);
  Stream attacker = MakeStream(kAttacker, 0);
  attacker.Mirror(phone);
  Outcome out;
  for (int ms = 80; ms < 10'000; ms += 20) {
    out.injected += attacker.Send(latch, Ms(ms)).forward;
    FarEndSends(latch, Ms(ms), attacker_ips, out);
  }
  EXPECT_EQ(out.injected, 0);
  EXPECT_EQ(out.bleed, 0);
  phone.Mirror(attacker);  // the phone's sequence moved on meanwhile
  EXPECT_TRUE(phone.Send(latch, Ms(10'000)).forward);
  EXPECT_EQ(latch.latched_source(), phone.source);
}

// FIRST_PACKET by design lets any IP continue a silent stream (the API says so): the on-path
// attacker takes it while the endpoint is silent, and the endpoint takes it back with its first
// packet; the attacker cannot win it again while the endpoint talks.
TEST(LatchTest, FirstPacketOnPathTakeoverIsUndoneByTheEndpoint) {
  Stream phone = MakeStream(kNatSource, 0x1111);
  Latch latch = LatchedBehindNat(v1::LATCHING_MODE_FIRST_PACKET, phone);
  Stream attacker = MakeStream(kAttacker, 0);
  attacker.Mirror(phone);
  Tally stolen = SendRun(latch, attacker, 2'000, 20);
  EXPECT_EQ(stolen.relatched, 1);
  EXPECT_EQ(latch.latched_source(), attacker.source);
  phone.Mirror(attacker);
  const LatchDecision back = phone.Send(latch, Ms(2'400));
  EXPECT_TRUE(back.forward);
  EXPECT_EQ(back.event, LatchEvent::kRelatched);
  Outcome out;
  for (int ms = 2'420; ms < 6'000; ms += 20) {
    EXPECT_TRUE(phone.Send(latch, Ms(ms)).forward);
    attacker.Mirror(phone);
    out.injected += attacker.Send(latch, Ms(ms + 5)).forward;
  }
  EXPECT_EQ(out.injected, 0);
  EXPECT_EQ(latch.latched_source(), phone.source);
}

// On hold (the endpoint's SDP is recvonly or inactive) silence is expected: no takeover at all,
// not even from the endpoint's own IP with its SSRC and sequence (a CGNAT neighbour who knows them).
TEST_P(AnyModeAttackTest, NoTakeoverWhileTheEndpointIsOnHold) {
  Stream phone = endpoint();
  Latch latch = Latched(phone);
  LatchTarget hold = target();
  hold.sending = false;
  latch.Configure(Policy(GetParam().mode), hold, Ms(100));
  Stream neighbour = MakeStream(GetParam().nat ? kNatOtherPort : kSdpIpOtherPort, 0);
  neighbour.Mirror(phone);
  const Tally t = SendRun(latch, neighbour, 200, 500);
  EXPECT_EQ(t.forwarded, 0);
  EXPECT_EQ(t.contested, 1) << "reported once, as an attack";
  EXPECT_EQ(latch.latched_source(), phone.source);
}

// A sprayer on the leg's port before the endpoint sends (the callee's ports exist from the offer),
// in-sequence at 50 packets/s, then while the endpoint latches.
TEST_P(DefaultModeAttackTest, SprayerBeforeTheEndpointNeverLatches) {
  Latch latch = Configured(GetParam().mode, target());
  Stream sprayer = MakeStream(kAttacker, 0x5151);
  Stream phone = endpoint();
  Outcome out;
  for (int ms = 0; ms < 6'000; ms += 20) {
    out.injected += sprayer.Send(latch, Ms(ms)).forward;
    if (ms >= 3'000) {
      EXPECT_TRUE(phone.Send(latch, Ms(ms + 7)).forward || ms < 3'080);
    }
    FarEndSends(latch, Ms(ms + 10), attacker_ips, out);
  }
  EXPECT_EQ(out.injected, 0);
  EXPECT_EQ(out.bleed, 0);
  EXPECT_EQ(latch.latched_source(), phone.source);
}

// FIRST_PACKET's documented weakness: whoever passes probation first latches.
TEST(LatchTest, FirstPacketIsWonByAnEarlySprayer) {
  Latch latch = Configured(v1::LATCHING_MODE_FIRST_PACKET, NatTarget());
  Stream sprayer = MakeStream(kAttacker, 0x5151);
  EXPECT_EQ(PacketsToLatch(latch, sprayer, 0), 4);
}

// Four fresh source ports per packet interval: the endpoint's candidate is never evicted, whether
// the spray comes from one other IP, from many (spoofed) IPs, or from the endpoint's own CGNAT IP.
struct SprayShape {
  std::string name;
  v1::LatchingMode mode;
  bool many_ips;
  bool same_ip_as_endpoint;
};
void PrintTo(const SprayShape& c, std::ostream* os) { *os << c.name; }
class ManyPortSprayTest : public ::testing::TestWithParam<SprayShape> {};
INSTANTIATE_TEST_SUITE_P(
    Shapes, ManyPortSprayTest,
    ::testing::Values(SprayShape{"FirstPacketOneIp", v1::LATCHING_MODE_FIRST_PACKET, false, false},
                      SprayShape{"FirstPacketManyIps", v1::LATCHING_MODE_FIRST_PACKET, true, false},
                      SprayShape{"SignalingSourceSameIp", v1::LATCHING_MODE_SIGNALING_SOURCE, false, true},
                      SprayShape{"HeuristicSameIp", v1::LATCHING_MODE_HEURISTIC, false, true}),
    [](const auto& info) { return info.param.name; });

TEST_P(ManyPortSprayTest, EndpointStillLatchesAfterProbation) {
  Latch latch = Configured(GetParam().mode, NatTarget());
  Stream phone = MakeStream(kNatSource, 0x1111);
  int sprayed = 0;
  int latched_at = -1;
  for (int ms = 0; ms < 400 && latched_at < 0; ++ms) {
    if (ms % 5 == 0) {
      const std::string ip = GetParam().same_ip_as_endpoint ? kNatIp
                             : GetParam().many_ips          ? absl::StrCat("192.0.2.", 1 + sprayed % 250)
                                                            : "192.0.2.66";
      Stream spray = MakeStream(absl::StrCat(ip, ":", 20'000 + sprayed++), 0x5151);
      EXPECT_FALSE(spray.Send(latch, Ms(ms)).forward);
    }
    if (ms % 20 == 3) {
      const LatchDecision d = phone.Send(latch, Ms(ms));
      if (d.event == LatchEvent::kLatched) latched_at = ms;
    }
  }
  EXPECT_EQ(latched_at, 63) << "the endpoint's 4th packet";
}

// A re-INVITE that changes the SDP keeps the lock: no window in which a sprayer that has been
// waiting can pass probation.
TEST_P(DefaultModeAttackTest, ReInviteKeepsTheLock) {
  Stream phone = endpoint();
  Latch latch = Latched(phone);
  Stream sprayer = MakeStream(kAttacker, 0);
  Outcome out;
  LatchTarget changed = target();
  changed.sdp = Addr(GetParam().nat ? "10.0.0.99:4010" : "0.0.0.0:30000");  // new private address; RFC 2543 hold
  for (int ms = 80; ms < 4'000; ms += 2) {
    if (ms == 1'000) latch.Configure(Policy(GetParam().mode), changed, Ms(ms));
    if (ms % 20 == 0) {
      EXPECT_TRUE(phone.Send(latch, Ms(ms)).forward) << ms;
      FarEndSends(latch, Ms(ms), attacker_ips, out);
    }
    sprayer.Mirror(phone);
    out.injected += sprayer.Send(latch, Ms(ms + 1)).forward;
  }
  EXPECT_EQ(out.injected, 0);
  EXPECT_EQ(out.bleed, 0);
  EXPECT_EQ(latch.latched_source(), phone.source);
}

// A public endpoint moves to a new port and says so in a re-INVITE: the new address latches on its
// first packet.
TEST(LatchTest, ReInviteNamingANewAddressMovesTheLockAtOnce) {
  Stream phone = MakeStream(kSdp, 1);
  Latch latch = LatchedOnSdp(v1::LATCHING_MODE_HEURISTIC, phone);
  SendRun(latch, phone, 20, 10);
  latch.Configure(Policy(v1::LATCHING_MODE_HEURISTIC), Target(kSdpIpOtherPort, kSdpIp, true), Ms(500));
  // Media goes where the endpoint says it is now, even before it speaks from there.
  EXPECT_EQ(latch.Destination(), Addr(kSdpIpOtherPort));
  EXPECT_EQ(latch.AdmitSend(Ms(500)), DropReason::kNone);
  Stream moved = MakeStream(kSdpIpOtherPort, 1);
  moved.Mirror(phone);
  const LatchDecision d = moved.Send(latch, Ms(520));
  EXPECT_TRUE(d.forward);
  EXPECT_EQ(d.event, LatchEvent::kLatched);
  EXPECT_EQ(latch.Destination(), Addr(kSdpIpOtherPort));
  // The old address has the same IP: it may come back, after a probation.
  EXPECT_FALSE(phone.Send(latch, Ms(540)).forward);
}

// Wi-Fi -> LTE: the phone re-registers and re-INVITEs from a new IP; its old path is dead.
TEST(LatchTest, HandoverReInviteRelatchesWithinProbation) {
  Stream wifi = MakeStream(kNatSource, 1);
  Latch latch = LatchedBehindNat(v1::LATCHING_MODE_SIGNALING_SOURCE, wifi);
  SendRun(latch, wifi, 80, 50);
  latch.Configure(Policy(v1::LATCHING_MODE_SIGNALING_SOURCE), Target("10.20.0.3:4000", "198.51.100.99", false),
                  Ms(1'200));
  Stream lte = MakeStream("198.51.100.99:6000", 1);
  lte.Mirror(wifi);
  EXPECT_EQ(PacketsToLatch(latch, lte, 1'210), 4) << "within 80 ms of the first packet";
  // The old path cannot come back: it is neither the signalling IP nor home any more.
  wifi.Mirror(lte);
  EXPECT_FALSE(wifi.Send(latch, Ms(1'400)).forward);
}

// Without signalling (no re-INVITE) a new IP is not followed, except in FIRST_PACKET.
TEST(LatchTest, NewIpWithoutSignallingIsFollowedOnlyInFirstPacket) {
  for (v1::LatchingMode mode : kLearningModes) {
    Stream wifi = MakeStream(kNatSource, 1);
    Latch latch = LatchedBehindNat(mode, wifi);
    Stream lte = MakeStream("198.51.100.99:6000", 1);
    lte.Mirror(wifi);
    const Tally t = SendRun(latch, lte, 100, 100);
    EXPECT_EQ(t.relatched, mode == v1::LATCHING_MODE_FIRST_PACKET ? 1 : 0) << v1::LatchingMode_Name(mode);
  }
}

// A NAT rebinding: the same stream continues from a new port of the same IP; the old port is dead.
TEST_P(AnyModeAttackTest, NatRebindingRelatchesWithinASecond) {
  Stream phone = endpoint();
  Latch latch = Latched(phone);
  SendRun(latch, phone, 80, 100);  // until t = 2060 ms
  Stream rebound = MakeStream(GetParam().nat ? kNatOtherPort : kSdpIpOtherPort, 0);
  rebound.Mirror(phone);
  int64_t relatched_ms = -1;
  for (int ms = 2'080; ms < 4'000 && relatched_ms < 0; ms += 20) {
    const LatchDecision d = rebound.Send(latch, Ms(ms));
    if (d.event == LatchEvent::kRelatched) relatched_ms = ms;
  }
  ASSERT_GT(relatched_ms, 0);
  EXPECT_LE(relatched_ms - 2'060, 1'000);
  EXPECT_EQ(latch.Destination(), rebound.source);
}

// Two sources with the lock's SSRC and sequence, both alive: a contest, never a takeover.
TEST_P(AnyModeAttackTest, ContestWithALiveEndpointIsRefusedAndReportedOnce) {
  Stream phone = endpoint();
  Latch latch = Latched(phone);
  Stream neighbour = MakeStream(GetParam().nat ? kNatOtherPort : kSdpIpOtherPort, 0);
  Tally t;
  for (int ms = 80; ms < 5'000; ms += 20) {
    Tally p;
    p.Add(phone.Send(latch, Ms(ms)));
    EXPECT_EQ(p.forwarded, 1);
    t.contested += p.contested;
    neighbour.Mirror(phone);
    for (int k = 0; k < 9; ++k) {  // a burst of nine, in sequence, between two of the phone's packets
      t.Add(neighbour.Send(latch, Ms(ms + 1 + 2 * k)));
    }
  }
  EXPECT_EQ(t.forwarded, 0);
  EXPECT_EQ(t.contested, 1);
  EXPECT_EQ(latch.latched_source(), phone.source);
}

// Rule 10: with the kernel forwarding the lock's media (the latch hears of it only through
// OnLockActivity), a live endpoint is exactly as safe as when its packets come through the latch.
TEST_P(AnyModeAttackTest, ContestWithAnEndpointOnTheKernelPathIsRefusedAndReportedOnce) {
  Stream phone = endpoint();
  Latch latch = Latched(phone);
  Stream neighbour = MakeStream(GetParam().nat ? kNatOtherPort : kSdpIpOtherPort, 0);
  Tally t;
  for (int ms = 80; ms < 5'000; ms += 20) {
    // The kernel forwarded one more packet of the phone's at `ms`; the latch learns of it when the
    // next handed-back packet arrives (the engine asks the kernel first).
    phone.seq++;
    phone.timestamp += 160;
    neighbour.Mirror(phone);
    for (int k = 0; k < 9; ++k) {
      const LatchDecision told = latch.OnLockActivity(phone.ssrc, static_cast<uint16_t>(phone.seq - 1), Ms(ms));
      EXPECT_FALSE(told.forward);
      if (told.event == LatchEvent::kContested) ++t.contested;
      t.Add(neighbour.Send(latch, Ms(ms + 1 + 2 * k)));
    }
  }
  EXPECT_EQ(t.forwarded, 0);
  EXPECT_EQ(t.relatched, 0);
  EXPECT_EQ(t.contested, 1);
  EXPECT_EQ(latch.latched_source(), phone.source);
}

// ... and a real NAT rebinding (the kernel's counters for the old port stop) still relatches.
TEST_P(AnyModeAttackTest, NatRebindingOffTheKernelPathRelatchesWithinASecond) {
  Stream phone = endpoint();
  Latch latch = Latched(phone);
  for (int ms = 80; ms <= 2'060; ms += 20) {
    phone.seq++;
    phone.timestamp += 160;
    latch.OnLockActivity(phone.ssrc, static_cast<uint16_t>(phone.seq - 1), Ms(ms));
  }
  Stream rebound = MakeStream(GetParam().nat ? kNatOtherPort : kSdpIpOtherPort, 0);
  rebound.Mirror(phone);
  int64_t relatched_ms = -1;
  for (int ms = 2'080; ms < 4'000 && relatched_ms < 0; ms += 20) {
    latch.OnLockActivity(phone.ssrc, static_cast<uint16_t>(phone.seq - 1), Ms(2'060));  // no news: ignored
    const LatchDecision d = rebound.Send(latch, Ms(ms));
    if (d.event == LatchEvent::kRelatched) relatched_ms = ms;
  }
  ASSERT_GT(relatched_ms, 0);
  EXPECT_LE(relatched_ms - 2'060, 1'000);
  EXPECT_EQ(latch.Destination(), rebound.source);
}

TEST(LatchTest, LockActivityWithoutALockOrOlderThanWhatWasSeenDoesNothing) {
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  const LatchDecision nothing = latch.OnLockActivity(0x1234, 5, Ms(100));
  EXPECT_FALSE(nothing.forward);
  EXPECT_EQ(nothing.event, LatchEvent::kNone);
  EXPECT_FALSE(latch.latched());
  Stream phone = MakeStream(kSdp, 0x1234);
  ASSERT_EQ(phone.Send(latch, Ms(200)).event, LatchEvent::kLatched);
  latch.OnLockActivity(phone.ssrc, phone.seq, Ms(150));  // older than the packet the latch saw
  EXPECT_EQ(latch.last_packet(), Ms(200));
  latch.OnLockActivity(phone.ssrc, phone.seq, Ms(300));
  EXPECT_EQ(latch.last_packet(), Ms(300));
}

// A neighbour behind the same CGNAT IP that does not know the stream: never, talking or silent.
TEST_P(DefaultModeAttackTest, SameIpNeighbourWithoutTheStreamNeverTakesOver) {
  Stream phone = endpoint();
  Latch latch = Latched(phone);
  Stream neighbour = MakeStream(GetParam().nat ? kNatOtherPort : kSdpIpOtherPort, 0x7777, 4242);
  Tally t;
  for (int ms = 80; ms < 10'000; ms += 20) {
    if (ms < 3'000) phone.Send(latch, Ms(ms));
    t.Add(neighbour.Send(latch, Ms(ms + 3)));
  }
  EXPECT_EQ(t.forwarded, 0);
  EXPECT_EQ(latch.latched_source(), phone.source);
}

// A neighbour behind the endpoint's CGNAT IP that beats the endpoint's first packet after the
// answer wins the first latch (docs/SECURITY.md: only a=ssrc tells them apart). While it streams
// the endpoint is refused (and reported); once it has been silent for abandoned_after the endpoint
// takes over, becomes home, and the racer cannot take the lock back.
TEST(LatchTest, AbandonedLockIsTakenOverAndTheRacerCannotReclaim) {
  Latch latch = Configured(v1::LATCHING_MODE_SIGNALING_SOURCE, NatTarget());
  Stream racer = MakeStream(kNatOtherPort, 0x5151);
  Stream phone = MakeStream(kNatSource, 0x1111);
  EXPECT_EQ(PacketsToLatch(latch, racer, 0), 4);
  Tally refused, lock;
  for (int ms = 100; ms < 3'000; ms += 20) {
    lock.Add(racer.Send(latch, Ms(ms)));
    refused.Add(phone.Send(latch, Ms(ms + 5)));
  }
  EXPECT_EQ(refused.forwarded, 0);
  // Reported once, with the lock's packet that found the phone streaming amid its own.
  EXPECT_EQ(refused.contested + lock.contested, 1);
  // The racer stops at 2,980 ms; the phone's SSRC differs, so it waits for abandonment.
  int64_t taken_ms = -1;
  for (int ms = 3'005; ms < 20'000 && taken_ms < 0; ms += 20) {
    if (phone.Send(latch, Ms(ms)).event == LatchEvent::kRelatched) taken_ms = ms;
  }
  EXPECT_GE(taken_ms, 2'980 + 10'000);
  EXPECT_LE(taken_ms, 2'980 + 10'000 + 20);
  EXPECT_FALSE(racer.Send(latch, Ms(taken_ms + 7)).forward);
  EXPECT_EQ(latch.latched_source(), phone.source);
}

TEST(LatchTest, NoAbandonmentOnHold) {
  Stream phone = MakeStream(kNatSource, 1);
  Latch latch = LatchedBehindNat(v1::LATCHING_MODE_SIGNALING_SOURCE, phone);
  LatchTarget hold = NatTarget();
  hold.sending = false;
  latch.Configure(Policy(v1::LATCHING_MODE_SIGNALING_SOURCE), hold, Ms(100));
  Stream neighbour = MakeStream(kNatOtherPort, 0x7777);
  EXPECT_EQ(SendRun(latch, neighbour, 200, 2'000).forwarded, 0);  // 40 s
}

// A private SDP address is not trusted at once: a spoofed private source must not aim media inside
// the relay's network. It still latches after probation where it may (a phone on the relay's LAN).
TEST(LatchTest, PrivateSdpAddressIsNotTrustedAtOnce) {
  Stream phone = MakeStream(kNatSource, 1);
  Latch latch = LatchedBehindNat(v1::LATCHING_MODE_HEURISTIC, phone);
  Stream spoofed = MakeStream(kPrivateSdp, 0x5151);
  EXPECT_FALSE(spoofed.Send(latch, Ms(100)).forward);
  EXPECT_EQ(latch.latched_source(), phone.source);
  Latch lan = Configured(v1::LATCHING_MODE_HEURISTIC, NatTarget());
  Stream on_lan = MakeStream(kPrivateSdp, 2);
  EXPECT_EQ(PacketsToLatch(lan, on_lan, 0), 4);
}

// Only the lock's own port and port + 1 prove it alive: RTCP from another port of its IP (spoofed,
// or a neighbour that won the RTCP pin) cannot hold off a NAT rebinding.
TEST(LatchTest, RtcpFromThePinnedPortIsNotLiveness) {
  Stream phone = MakeStream(kNatSource, 1);
  Latch latch = LatchedBehindNat(v1::LATCHING_MODE_SIGNALING_SOURCE, phone);
  SendRun(latch, phone, 80, 50);  // until 1,060 ms
  Stream rebound = MakeStream(kNatOtherPort, 0);
  rebound.Mirror(phone);
  int64_t relatched = -1;
  for (int ms = 1'080; ms < 4'000 && relatched < 0; ms += 20) {
    if (ms % 200 == 0) latch.OnRtcp(Addr("198.51.100.7:7777"), Ms(ms + 1));
    if (rebound.Send(latch, Ms(ms)).event == LatchEvent::kRelatched) relatched = ms;
  }
  ASSERT_GT(relatched, 0);
  EXPECT_LE(relatched - 1'060, 1'000);
}

// A neighbour that knows the SSRC but not the sequence cannot sweep the rebinding window: every
// wrong guess costs it a relatch_min_interval.
TEST(LatchTest, SequenceWindowCannotBeSwept) {
  Stream phone = MakeStream(kNatSource, 0x1111);
  Latch latch = LatchedBehindNat(v1::LATCHING_MODE_SIGNALING_SOURCE, phone);  // last sequence 1003
  Stream guesser = MakeStream(kNatOtherPort, 0x1111, 30'000);
  Tally guesses = SendRun(latch, guesser, 2'000, 8, 2);  // a wrong guess
  EXPECT_EQ(guesses.contested, 1);
  Stream right = MakeStream("198.51.100.7:50004", 0x1111);
  right.Mirror(phone);
  const int n = PacketsToLatch(latch, right, 2'020);
  EXPECT_GE(2'020 + (n - 1) * 20, 2'014 + 1'000) << "blocked for a second after the wrong guess";
}

// A stream from afar never replaces even an abandoned lock; one from the lock's IP does, becomes
// home, and the endpoint that went quiet has to wait for its silence in turn.
TEST(LatchTest, AbandonmentNeedsTheLocksIpAndLeavesNoHome) {
  Stream phone = MakeStream(kNatSource, 0x1111);
  Latch latch = LatchedBehindNat(v1::LATCHING_MODE_FIRST_PACKET, phone);
  Stream far = MakeStream(kAttacker, 0x5151);
  EXPECT_EQ(SendRun(latch, far, 100, 1'500).forwarded, 0) << "30 s of a blind stream from another IP";
  Stream neighbour = MakeStream(kNatOtherPort, 0x7777);
  int64_t taken = -1;
  for (int ms = 30'100; ms < 45'000 && taken < 0; ms += 20) {
    if (neighbour.Send(latch, Ms(ms)).event == LatchEvent::kRelatched) taken = ms;
  }
  ASSERT_GT(taken, 0) << "the phone has been silent (no RTP, no RTCP) since 60 ms";
  // The phone comes back: it is not home any more, so it waits for the neighbour's silence too.
  // (The price of recovering from a racer; docs/SECURITY.md, "the 10 s rule".)
  EXPECT_FALSE(phone.Send(latch, Ms(taken + 20)).forward);
  EXPECT_EQ(latch.latched_source(), neighbour.source);
}

TEST(LatchTest, TakeoversAreRateLimited) {
  Stream phone = MakeStream(kNatSource, 1);
  Latch latch = LatchedBehindNat(v1::LATCHING_MODE_SIGNALING_SOURCE, phone);  // latched at 60 ms
  Stream a = MakeStream(kNatOtherPort, 0);
  a.Mirror(phone);
  EXPECT_EQ(PacketsToLatch(latch, a, 1'100), 8);  // a takeover probation, at 1,240 ms
  Stream b = MakeStream("198.51.100.7:50004", 0);
  b.Mirror(a);
  const int n = PacketsToLatch(latch, b, 1'300);
  // a is silent after 1,240 ms; b proved itself long before, but waits until 1 s after a's latch.
  EXPECT_EQ(1'300 + (n - 1) * 20, 2'240);
}

// ---------------------------------------------------------------------------------------------
// HEURISTIC standings

TEST(LatchTest, HeuristicLatchesAnyoneOnlyWhenSignallingNamesNobody) {
  // Private SDP, no signalling IP: a source from anywhere latches after the takeover probation...
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, Target(kPrivateSdp, std::nullopt, false));
  Stream far = MakeStream("192.0.2.10:5000", 1);
  EXPECT_EQ(PacketsToLatch(latch, far, 0), 8);
  // ...and a source from the SDP IP upgrades over it after a plain probation, while it streams.
  Stream lan = MakeStream("10.0.0.5:4002", 2);
  int upgraded = -1;
  for (int i = 0; i < 20 && upgraded < 0; ++i) {
    far.Send(latch, Ms(200 + i * 20));
    if (lan.Send(latch, Ms(205 + i * 20)).event == LatchEvent::kRelatched) upgraded = i + 1;
  }
  EXPECT_EQ(upgraded, 4);
  // The one it replaced is not home: it cannot take the lock back.
  EXPECT_FALSE(far.Send(latch, Ms(1'000)).forward);

  // With a signalling IP or a sendable SDP address, anyone else never latches.
  for (const LatchTarget& target : {NatTarget(), PublicTarget()}) {
    Latch strictish = Configured(v1::LATCHING_MODE_HEURISTIC, target);
    Stream other = MakeStream("192.0.2.10:5000", 1);
    const Tally t = SendRun(strictish, other, 0, 200);
    EXPECT_EQ(t.forwarded, 0);
    EXPECT_EQ(t.drop(DropReason::kWrongSource), 200);
  }
}

TEST(LatchTest, HeuristicSignalingIpAndSdpIpAreKnown) {
  for (const std::string& source : {std::string(kNatSource), std::string("10.0.0.5:4002")}) {
    Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, NatTarget());
    Stream s = MakeStream(source, 1);
    EXPECT_EQ(PacketsToLatch(latch, s, 0), 4) << source;
  }
}

TEST(LatchTest, SignalingSourceWithoutSignalingIpLatchesOnlyExactSdp) {
  Latch latch = Configured(v1::LATCHING_MODE_SIGNALING_SOURCE, Target(kSdp, std::nullopt, true));
  Stream other = MakeStream(kSdpIpOtherPort, 1);
  EXPECT_EQ(SendRun(latch, other, 0, 50).drop(DropReason::kNotSignalingIp), 50);
  Stream exact = MakeStream(kSdp, 2);
  EXPECT_EQ(exact.Send(latch, Ms(1'100)).event, LatchEvent::kLatched);
}

// ---------------------------------------------------------------------------------------------
// STRICT

TEST(LatchTest, StrictForwardsOnlyTheSendableSdpAddress) {
  Latch latch = Configured(v1::LATCHING_MODE_STRICT, PublicTarget());
  Stream exact = MakeStream(kSdp, 1);
  Stream other = MakeStream(kSdpIpOtherPort, 1);
  EXPECT_EQ(SendRun(latch, exact, 0, 10).forwarded, 10);
  EXPECT_EQ(SendRun(latch, other, 0, 10).drop(DropReason::kStrict), 10);
  EXPECT_FALSE(latch.latched());
  EXPECT_EQ(latch.Destination(), Addr(kSdp));
}

TEST(LatchTest, StrictWithAnUnsendableSdpAddressIsNoProxy) {
  // An offer naming a node-local service: no destination, nothing forwarded from it either.
  Latch latch = Configured(v1::LATCHING_MODE_STRICT, Target("127.0.0.53:53", std::nullopt, false));
  Stream dns = MakeStream("127.0.0.53:53", 1);
  EXPECT_EQ(SendRun(latch, dns, 0, 10).drop(DropReason::kStrict), 10);
  EXPECT_EQ(latch.Destination(), std::nullopt);
  EXPECT_EQ(latch.AdmitSend(Ms(300)), DropReason::kNoDestination);
  EXPECT_EQ(latch.OnRtcp(Addr("127.0.0.53:54"), Ms(300)).reason, DropReason::kStrict);
}

TEST(LatchTest, SwitchingToStrictReleasesTheLock) {
  Stream phone = MakeStream(kNatSource, 1);
  Latch latch = LatchedBehindNat(v1::LATCHING_MODE_SIGNALING_SOURCE, phone);
  latch.Configure(Policy(v1::LATCHING_MODE_STRICT), NatTarget(), Ms(100));
  EXPECT_FALSE(latch.latched());
  EXPECT_EQ(phone.Send(latch, Ms(120)).reason, DropReason::kStrict);
  EXPECT_EQ(latch.Destination(), std::nullopt);
}

// ---------------------------------------------------------------------------------------------
// RTCP

TEST(LatchTest, RtcpIsTiedToTheLatchedSource) {
  Stream phone = MakeStream(kNatSource, 1);  // 198.51.100.7:50000
  Latch latch = LatchedBehindNat(v1::LATCHING_MODE_SIGNALING_SOURCE, phone);
  EXPECT_TRUE(latch.OnRtcp(Addr("198.51.100.7:50001"), Ms(100)).forward);  // port + 1
  EXPECT_TRUE(latch.OnRtcp(Addr("198.51.100.7:50000"), Ms(110)).forward);  // rtcp-mux
  EXPECT_TRUE(latch.OnRtcp(Addr("198.51.100.7:61000"), Ms(120)).forward);  // NAT mapped it elsewhere: pinned
  EXPECT_EQ(latch.OnRtcp(Addr("198.51.100.7:61002"), Ms(130)).reason, DropReason::kRtcpRefused);
  EXPECT_EQ(latch.OnRtcp(Addr(kAttacker), Ms(140)).reason, DropReason::kRtcpRefused);
  EXPECT_TRUE(latch.OnRtcp(Addr("198.51.100.7:61000"), Ms(150)).forward);
  // A relatch starts over: port + 1 of the new source, and a new pin.
  Stream rebound = MakeStream(kNatOtherPort, 0);  // :50002
  rebound.Mirror(phone);
  ASSERT_GT(PacketsToLatch(latch, rebound, 400), 0);
  EXPECT_EQ(latch.OnRtcp(Addr("198.51.100.7:50001"), Ms(2'000)).reason, DropReason::kNone) << "first other port: pinned";
  EXPECT_TRUE(latch.OnRtcp(Addr("198.51.100.7:50003"), Ms(2'010)).forward);
  EXPECT_EQ(latch.OnRtcp(Addr("198.51.100.7:61000"), Ms(2'020)).reason, DropReason::kRtcpRefused);
}

TEST(LatchTest, RtcpBeforeTheLatchOnlyFromASendableSdpIp) {
  Latch nat = Configured(v1::LATCHING_MODE_SIGNALING_SOURCE, NatTarget());
  EXPECT_EQ(nat.OnRtcp(Addr("198.51.100.7:50001"), Ms(0)).reason, DropReason::kRtcpRefused);
  Latch pub = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  EXPECT_TRUE(pub.OnRtcp(Addr("203.0.113.5:30001"), Ms(0)).forward);
  EXPECT_EQ(pub.OnRtcp(Addr(kAttacker), Ms(0)).reason, DropReason::kRtcpRefused);
  EXPECT_FALSE(pub.latched()) << "RTCP never latches";
}

// A muted endpoint that still sends RTCP reports is alive: no takeover.
TEST(LatchTest, RtcpFromTheLockIsLiveness) {
  Stream phone = MakeStream(kNatSource, 1);
  Latch latch = LatchedBehindNat(v1::LATCHING_MODE_SIGNALING_SOURCE, phone);
  Stream neighbour = MakeStream(kNatOtherPort, 0);
  neighbour.Mirror(phone);
  Tally t;
  for (int ms = 100; ms < 5'000; ms += 20) {
    if (ms % 200 == 0) {
      EXPECT_TRUE(latch.OnRtcp(Addr("198.51.100.7:50001"), Ms(ms)).forward);
    }
    t.Add(neighbour.Send(latch, Ms(ms + 1)));
  }
  EXPECT_EQ(t.forwarded, 0);
  EXPECT_EQ(latch.latched_source(), phone.source);
}

// ---------------------------------------------------------------------------------------------
// Rule 8: media before the latch

TEST(LatchTest, UnlatchedSendsAreRateLimited) {
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  int sent = 0;
  for (int i = 0; i < 50; ++i) sent += latch.AdmitSend(Ms(0)) == DropReason::kNone;
  EXPECT_EQ(sent, static_cast<int>(Latch::kUnlatchedBurst));
  EXPECT_EQ(latch.AdmitSend(Ms(0)), DropReason::kUnlatchedRate);
  // 100 packets/s thereafter: one per 10 ms.
  sent = 0;
  for (int ms = 1; ms <= 1'000; ++ms) sent += latch.AdmitSend(Ms(ms)) == DropReason::kNone;
  EXPECT_NEAR(sent, 100, 1);
  // Packets from the SDP IP renew consent but never lift the rate: a spoofer of that IP gets no more.
  Stream lan = MakeStream(kSdpIpOtherPort, 1);
  EXPECT_EQ(lan.Send(latch, Ms(1'001)).reason, DropReason::kProbation);
  sent = 0;
  for (int i = 0; i < 500; ++i) sent += latch.AdmitSend(Ms(1'002)) == DropReason::kNone;
  EXPECT_LE(sent, static_cast<int>(Latch::kUnlatchedBurst));
}

TEST(LatchTest, OnlyASourceThatMayLatchRenewsConsent) {
  // SIGNALING_SOURCE: the SDP names a public address the SIP did not come from (a victim's, say);
  // packets from that address are not even tracked, so they do not keep media flowing to it.
  Latch latch = Configured(v1::LATCHING_MODE_SIGNALING_SOURCE, Target(kSdp, kNatIp, true));
  Stream victim = MakeStream(kSdpIpOtherPort, 1);
  for (int ms = 0; ms < 8'000; ms += 500) EXPECT_EQ(victim.Send(latch, Ms(ms)).reason, DropReason::kNotSignalingIp);
  EXPECT_EQ(latch.AdmitSend(Ms(5'001)), DropReason::kNoConsent);
}

TEST(LatchTest, RtcpGoesOnlyToTheIpMediaGoesTo) {
  // An a=rtcp line naming a third party: refused before the latch and after it.
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  EXPECT_EQ(latch.AdmitRtcpSend(Addr("192.0.2.99:9"), Ms(0)), DropReason::kNoDestination);
  EXPECT_EQ(latch.AdmitRtcpSend(Addr("203.0.113.5:30001"), Ms(0)), DropReason::kNone);
  Stream phone = MakeStream(kSdp, 1);
  phone.Send(latch, Ms(10));
  EXPECT_EQ(latch.AdmitRtcpSend(Addr("192.0.2.99:9"), Ms(20)), DropReason::kNoDestination);
  EXPECT_EQ(latch.AdmitRtcpSend(Addr("203.0.113.5:30001"), Ms(20)), DropReason::kNone);
  EXPECT_EQ(latch.AdmitRtcpSend(Addr("203.0.113.5:61000"), Ms(99'000)), DropReason::kNone);  // learned port
}

TEST(LatchTest, UnlatchedSendsStopWithoutConsent) {
  Latch latch = Configured(v1::LATCHING_MODE_HEURISTIC, PublicTarget());
  EXPECT_EQ(latch.AdmitSend(Ms(4'999)), DropReason::kNone);
  EXPECT_EQ(latch.AdmitSend(Ms(5'001)), DropReason::kNoConsent);
  // RTCP from the SDP IP renews consent.
  EXPECT_TRUE(latch.OnRtcp(Addr("203.0.113.5:30001"), Ms(6'000)).forward);
  EXPECT_EQ(latch.AdmitSend(Ms(10'999)), DropReason::kNone);
  EXPECT_EQ(latch.AdmitSend(Ms(11'001)), DropReason::kNoConsent);
  // So does signalling (a re-INVITE)...
  latch.Configure(Policy(v1::LATCHING_MODE_HEURISTIC), PublicTarget(), Ms(20'000));
  EXPECT_EQ(latch.AdmitSend(Ms(20'001)), DropReason::kNone);
  // ...and spraying from another IP does not.
  Stream sprayer = MakeStream(kAttacker, 1);
  SendRun(latch, sprayer, 20'000, 400);
  EXPECT_EQ(latch.AdmitSend(Ms(28'000)), DropReason::kNoConsent);
  // A latched leg sends to its endpoint whatever the time.
  Stream phone = MakeStream(kSdp, 1);
  phone.Send(latch, Ms(30'000));
  EXPECT_EQ(latch.AdmitSend(Ms(90'000)), DropReason::kNone);
}

TEST(LatchTest, NoUnlatchedSendsToAnUnsendableAddress) {
  Latch latch = Configured(v1::LATCHING_MODE_SIGNALING_SOURCE, NatTarget());
  EXPECT_EQ(latch.AdmitSend(Ms(0)), DropReason::kNoDestination);
}

// ---------------------------------------------------------------------------------------------
// Randomized property: a legitimate endpoint with holds, pauses, re-INVITEs and NAT rebindings,
// and an attacker who knows everything it could see on the path (SSRC, sequence, timestamps, the
// relay ports) but sends from other IPs, so it never receives what is sent to the endpoint.
// Whatever the interleaving: the attacker never receives media, never injects a packet, and the
// endpoint ends with the lock once it talks.

struct PropertyCase {
  std::string name;
  v1::LatchingMode mode;
  bool nat;
  bool attacker_knows_stream;  // FIRST_PACKET is only safe against one who does not
  bool attacker_before_endpoint;
};
void PrintTo(const PropertyCase& c, std::ostream* os) { *os << c.name; }

class LatchPropertyTest : public ::testing::TestWithParam<PropertyCase> {};
INSTANTIATE_TEST_SUITE_P(
    Cases, LatchPropertyTest,
    ::testing::Values(PropertyCase{"SignalingSourceNat", v1::LATCHING_MODE_SIGNALING_SOURCE, true, true, true},
                      PropertyCase{"SignalingSourcePublic", v1::LATCHING_MODE_SIGNALING_SOURCE, false, true, true},
                      PropertyCase{"HeuristicNat", v1::LATCHING_MODE_HEURISTIC, true, true, true},
                      PropertyCase{"HeuristicPublic", v1::LATCHING_MODE_HEURISTIC, false, true, true},
                      PropertyCase{"FirstPacketBlindAttacker", v1::LATCHING_MODE_FIRST_PACKET, true, false, false}),
    [](const auto& info) { return info.param.name; });

TEST_P(LatchPropertyTest, AttackerNeverWinsAndTheEndpointEndsWithTheLock) {
  const PropertyCase& c = GetParam();
  constexpr int kSeeds = 150;
  constexpr int kDurationMs = 20'000;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937 rng(static_cast<uint32_t>(seed) * 7919u);
    auto chance = [&rng](int percent) { return static_cast<int>(rng() % 100) < percent; };

    const std::string phone_ip = c.nat ? kNatIp : kSdpIp;
    uint16_t phone_port = c.nat ? 50000 : 30000;
    LatchTarget target = c.nat ? NatTarget() : PublicTarget();
    Latch latch = Configured(c.mode, target);
    Stream phone = MakeStream(absl::StrCat(phone_ip, ":", phone_port), 0x1111);

    enum class Phone { kIdle, kTalking, kPaused, kHeld } state = Phone::kIdle;
    int64_t state_until = 500 + rng() % 3'000;  // the phone starts some time after the answer
    // The attacker: a fixed port or fresh ports, one IP or many, a rate, and whether it mirrors.
    Stream attacker = MakeStream("192.0.2.66:40000", 0x5151);
    int attacker_step = 2 + static_cast<int>(rng() % 200);
    bool fresh_ports = chance(30);
    bool many_ips = chance(30);
    const std::vector<net::IpAddress> attacker_ips = [&] {
      std::vector<net::IpAddress> ips;
      for (int i = 0; i < 250; ++i) ips.push_back(Ip(absl::StrCat("192.0.2.", i)));
      return ips;
    }();
    Outcome out;
    int64_t last_talk_start = -1;

    for (int64_t ms = 0; ms < kDurationMs; ++ms) {
      // The endpoint's life: talk, pause (DTX), hold, re-INVITE, NAT rebinding.
      if (ms >= state_until && ms < kDurationMs - 3'000) {
        const int pick = static_cast<int>(rng() % 100);
        if (state == Phone::kHeld || pick < 50) {
          if (state == Phone::kHeld) {
            target.sending = true;
            latch.Configure(Policy(c.mode), target, Ms(ms));  // re-INVITE off hold
          }
          state = Phone::kTalking;
          last_talk_start = ms;
        } else if (pick < 70) {
          state = Phone::kPaused;
        } else if (pick < 80) {
          state = Phone::kHeld;
          target.sending = false;
          latch.Configure(Policy(c.mode), target, Ms(ms));
        } else if (pick < 90) {
          // NAT rebinding: the stream continues from a new port; the old mapping is gone.
          phone_port = static_cast<uint16_t>(phone_port + 2);
          phone.source = Addr(absl::StrCat(phone_ip, ":", phone_port));
          if (!c.nat) {  // a public endpoint says where it is now
            target.sdp = phone.source;
            latch.Configure(Policy(c.mode), target, Ms(ms));
          }
          state = Phone::kTalking;
          last_talk_start = ms;
        } else {
          latch.Configure(Policy(c.mode), target, Ms(ms));  // a re-INVITE that changes nothing
        }
        state_until = ms + 200 + rng() % 2'500;
      }
      if (ms >= kDurationMs - 3'000 && state != Phone::kTalking) {
        if (state == Phone::kHeld) {
          target.sending = true;
          latch.Configure(Policy(c.mode), target, Ms(ms));
        }
        state = Phone::kTalking;
        last_talk_start = ms;
      }
      if (state == Phone::kTalking && ms % 20 == 0) phone.Send(latch, Ms(ms));
      if (ms % 20 == 10) FarEndSends(latch, Ms(ms), attacker_ips, out);

      // The attacker.
      if ((c.attacker_before_endpoint || latch.latched()) && ms % attacker_step == 0) {
        if (fresh_ports || many_ips) {
          const int n = static_cast<int>(rng() % 60'000);
          attacker.source = Addr(absl::StrCat("192.0.2.", many_ips ? 1 + n % 249 : 66, ":", 1'024 + n));
        }
        if (c.attacker_knows_stream && chance(80)) attacker.Mirror(phone, static_cast<uint16_t>(1 + rng() % 3));
        out.injected += attacker.Send(latch, Ms(ms)).forward;
        if (chance(5)) out.injected += latch.OnRtcp(attacker.source, Ms(ms)).forward;
        if (chance(1)) attacker_step = 2 + static_cast<int>(rng() % 200);
      }
    }
    EXPECT_EQ(out.bleed, 0);
    EXPECT_EQ(out.injected, 0);
    ASSERT_GE(last_talk_start, 0);
    EXPECT_EQ(latch.latched_source(), phone.source);
  }
}

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
