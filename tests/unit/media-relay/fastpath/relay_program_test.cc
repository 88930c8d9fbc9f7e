// The fast path's eBPF programs run by the kernel on crafted frames (BPF_PROG_TEST_RUN): what is
// forwarded comes out rewritten with checksums that an independent computation accepts, and every
// hand-back case comes out untouched. Needs bpf() (root, or CAP_BPF + CAP_NET_ADMIN): skipped with
// the reason otherwise.
#include "media-relay/fastpath/relay_program.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::relay {
namespace {

constexpr uint8_t kPeerMac[6] = {0x02, 0, 0, 0, 0, 0xaa};
constexpr uint8_t kRelayMac[6] = {0x02, 0, 0, 0, 0, 0x01};
constexpr uint8_t kNextHopMac[6] = {0x02, 0, 0, 0, 0, 0xbb};
// Frames are addressed to the test harness's device (the namespace's loopback, all zeros): tc
// forwards only frames for this host.
constexpr uint8_t kHarnessMac[6] = {0, 0, 0, 0, 0, 0};
constexpr uint32_t kSsrc = 0x11223344;
// tc's "not mine": the next filter (another relay's) still sees the packet.
constexpr uint32_t kTcPass = static_cast<uint32_t>(TC_ACT_UNSPEC);

uint32_t Ip(const char* text) {
  in_addr a{};
  ::inet_pton(AF_INET, text, &a);
  return a.s_addr;  // network order
}

// A -> relay:40000 arrives; it leaves relay:40002 -> B.
const lk_flow_key kKey{Ip("198.51.100.7"), Ip("192.0.2.1"), htons(5004), htons(40000)};

lk_flow_value Value(uint32_t stream = 7) {
  lk_flow_value v{};
  v.new_src_ip = Ip("192.0.2.1");
  v.new_dst_ip = Ip("203.0.113.9");
  v.new_src_port = htons(40002);
  v.new_dst_port = htons(6000);
  std::memcpy(v.dst_mac, kNextHopMac, 6);
  std::memcpy(v.src_mac, kRelayMac, 6);
  v.ssrc = htonl(kSsrc);
  v.stream = stream;
  v.clock_rate = 8000;
  return v;
}

uint16_t Get16(const std::vector<uint8_t>& f, size_t at) { return static_cast<uint16_t>(f[at] << 8 | f[at + 1]); }
void Put16(std::vector<uint8_t>& f, size_t at, uint16_t v) {
  f[at] = static_cast<uint8_t>(v >> 8);
  f[at + 1] = static_cast<uint8_t>(v);
}

// The Internet checksum, computed from scratch (the program updates incrementally).
uint16_t Checksum(const uint8_t* data, size_t size, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < size; i += 2) sum += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  if (size % 2) sum += static_cast<uint32_t>(data[size - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

constexpr size_t kEth = 14, kIp = 14, kUdp = 34, kRtp = 42;

uint16_t UdpChecksum(const std::vector<uint8_t>& f) {
  const size_t udp_len = Get16(f, kUdp + 4);
  uint32_t pseudo = 0;
  for (size_t i = kIp + 12; i < kIp + 20; i += 2) pseudo += Get16(f, i);
  pseudo += 17 + static_cast<uint32_t>(udp_len);
  std::vector<uint8_t> udp(f.begin() + kUdp, f.begin() + static_cast<long>(kUdp + udp_len));
  udp[6] = udp[7] = 0;
  const uint16_t sum = Checksum(udp.data(), udp.size(), pseudo);
  return sum == 0 ? 0xffff : sum;
}

struct FrameSpec {
  lk_flow_key key = kKey;
  uint32_t ssrc = kSsrc;
  uint16_t seq = 100;
  uint32_t timestamp = 16000;
  uint8_t first = 0x80;   // V=2
  uint8_t second = 0x00;  // PCMU
  size_t payload = 160;
  bool udp_checksum = true;
};

std::vector<uint8_t> Frame(const FrameSpec& s) {
  const size_t udp_len = 8 + 12 + s.payload;
  std::vector<uint8_t> f(kUdp + udp_len, 0);
  std::memcpy(&f[0], kHarnessMac, 6);
  std::memcpy(&f[6], kPeerMac, 6);
  Put16(f, 12, 0x0800);
  f[kIp] = 0x45;
  Put16(f, kIp + 2, static_cast<uint16_t>(20 + udp_len));
  Put16(f, kIp + 4, 0x1234);
  f[kIp + 8] = 57;  // TTL
  f[kIp + 9] = 17;  // UDP
  std::memcpy(&f[kIp + 12], &s.key.src_ip, 4);
  std::memcpy(&f[kIp + 16], &s.key.dst_ip, 4);
  Put16(f, kIp + 10, Checksum(&f[kIp], 20));
  std::memcpy(&f[kUdp], &s.key.src_port, 2);
  std::memcpy(&f[kUdp + 2], &s.key.dst_port, 2);
  Put16(f, kUdp + 4, static_cast<uint16_t>(udp_len));
  f[kRtp] = s.first;
  f[kRtp + 1] = s.second;
  Put16(f, kRtp + 2, s.seq);
  const uint32_t ts = htonl(s.timestamp), ssrc = htonl(s.ssrc);
  std::memcpy(&f[kRtp + 4], &ts, 4);
  std::memcpy(&f[kRtp + 8], &ssrc, 4);
  for (size_t i = 0; i < s.payload; ++i) f[kRtp + 12 + i] = static_cast<uint8_t>(i * 7 + 3);
  if (s.udp_checksum) Put16(f, kUdp + 6, UdpChecksum(f));
  return f;
}

struct Outcome {
  bool ran = false;  // false: the kernel's test harness refused the frame (see RandomFrames...)
  uint32_t verdict = 0;
  std::vector<uint8_t> out;
};

class RelayProgramTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto program = RelayProgram::Load();
    if (!program.ok()) GTEST_SKIP() << "bpf() refused here (needs root or CAP_BPF + CAP_NET_ADMIN): " << program.status();
    program_ = *std::move(program);
    ASSERT_TRUE(program_->KeepAliveUntil(MonotonicNow() + absl::Minutes(5)).ok());
    ASSERT_TRUE(program_->UpsertFlow(kKey, Value()).ok());
    // XDP's test runs arrive on the namespace's loopback (ifindex 1).
    ASSERT_TRUE(program_->SetInterfaceMac(1, kHarnessMac).ok());
  }

  Outcome RunOn(int fd, const std::vector<uint8_t>& frame, bool may_refuse = false) {
    Outcome run;
    run.out.resize(frame.size() + 256);
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = run.out.data(),
                .data_size_in = static_cast<__u32>(frame.size()), .data_size_out = static_cast<__u32>(run.out.size()),
                .repeat = 1);
    const int err = bpf_prog_test_run_opts(fd, &opts);
    if (may_refuse && err == -EINVAL) return run;
    EXPECT_EQ(err, 0) << std::strerror(errno);
    run.ran = err == 0;
    run.verdict = opts.retval;
    run.out.resize(opts.data_size_out);
    return run;
  }
  Outcome Xdp(const std::vector<uint8_t>& frame) { return RunOn(program_->xdp_fd(), frame); }
  Outcome Tc(const std::vector<uint8_t>& frame) { return RunOn(program_->tc_fd(), frame); }

  lk_stream_stats Sum(uint32_t stream) {
    std::vector<lk_stream_stats> per_cpu;
    EXPECT_TRUE(program_->ReadStream(stream, &per_cpu).ok());
    lk_stream_stats total{};
    for (const lk_stream_stats& s : per_cpu) {
      total.packets += s.packets;
      total.bytes += s.bytes;
      if (s.started) total = lk_stream_stats{total.packets, total.bytes, s.last_ns, s.max_seq_ext, s.base_seq_ext,
                                             s.last_seq, s.transit, s.jitter16, 1};
    }
    return total;
  }

  // What the program must have made of a matching frame.
  void ExpectForwarded(const std::vector<uint8_t>& in, const std::vector<uint8_t>& out, bool udp_checksum = true) {
    ASSERT_EQ(out.size(), in.size());
    EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.begin() + 6), std::vector<uint8_t>(kNextHopMac, kNextHopMac + 6));
    EXPECT_EQ(std::vector<uint8_t>(out.begin() + 6, out.begin() + 12), std::vector<uint8_t>(kRelayMac, kRelayMac + 6));
    uint32_t src, dst;
    std::memcpy(&src, &out[kIp + 12], 4);
    std::memcpy(&dst, &out[kIp + 16], 4);
    EXPECT_EQ(src, Ip("192.0.2.1"));
    EXPECT_EQ(dst, Ip("203.0.113.9"));
    EXPECT_EQ(Get16(out, kUdp), 40002);
    EXPECT_EQ(Get16(out, kUdp + 2), 6000);
    EXPECT_EQ(out[kIp + 8], 64) << "TTL";
    EXPECT_EQ(Checksum(&out[kIp], 20), 0) << "IPv4 header checksum";
    if (udp_checksum) {
      EXPECT_EQ(Get16(out, kUdp + 6), UdpChecksum(out)) << "UDP checksum";
    } else {
      EXPECT_EQ(Get16(out, kUdp + 6), 0) << "no UDP checksum stays none";
    }
    EXPECT_EQ(std::vector<uint8_t>(out.begin() + kRtp, out.end()), std::vector<uint8_t>(in.begin() + kRtp, in.end()))
        << "RTP untouched";
  }

  std::unique_ptr<RelayProgram> program_;
};

TEST_F(RelayProgramTest, XdpForwardsAMatchingRtpPacketRewritten) {
  const std::vector<uint8_t> in = Frame({});
  const Outcome run = Xdp(in);
  EXPECT_EQ(run.verdict, static_cast<uint32_t>(XDP_TX));
  ExpectForwarded(in, run.out);
  const lk_stream_stats stats = Sum(7);
  EXPECT_EQ(stats.packets, 1u);
  EXPECT_EQ(stats.bytes, 12u + 160u);
  EXPECT_EQ(stats.last_seq, 100u);
}

TEST_F(RelayProgramTest, TcForwardsAMatchingRtpPacketRewritten) {
  const std::vector<uint8_t> in = Frame({});
  const Outcome run = Tc(in);
  EXPECT_EQ(run.verdict, static_cast<uint32_t>(TC_ACT_REDIRECT));
  ExpectForwarded(in, run.out);
  EXPECT_EQ(Sum(7).packets, 1u);
}

TEST_F(RelayProgramTest, AZeroUdpChecksumStaysZeroOnBothPaths) {
  const std::vector<uint8_t> in = Frame({.udp_checksum = false});
  const Outcome xdp = Xdp(in);
  EXPECT_EQ(xdp.verdict, static_cast<uint32_t>(XDP_TX));
  ExpectForwarded(in, xdp.out, /*udp_checksum=*/false);
  const Outcome tc = Tc(in);
  EXPECT_EQ(tc.verdict, static_cast<uint32_t>(TC_ACT_REDIRECT));
  ExpectForwarded(in, tc.out, /*udp_checksum=*/false);
}

TEST_F(RelayProgramTest, CsrcsInsideTheDatagramAreForwarded) {
  const std::vector<uint8_t> in = Frame({.first = 0x82});  // two CSRCs, 160 bytes after the header
  EXPECT_EQ(Xdp(in).verdict, static_cast<uint32_t>(XDP_TX));
}

TEST_F(RelayProgramTest, ChecksumsHoldForManyAddressesPortsAndPayloads) {
  std::mt19937 random(42);
  for (int i = 0; i < 200; ++i) {
    lk_flow_key key{static_cast<uint32_t>(random()), static_cast<uint32_t>(random()),
                    static_cast<uint16_t>(random()), static_cast<uint16_t>(random())};
    lk_flow_value value = Value(static_cast<uint32_t>(i));
    value.new_src_ip = static_cast<uint32_t>(random());
    value.new_dst_ip = static_cast<uint32_t>(random());
    value.new_src_port = static_cast<uint16_t>(random());
    value.new_dst_port = static_cast<uint16_t>(random());
    ASSERT_TRUE(program_->UpsertFlow(key, value).ok());
    const std::vector<uint8_t> in = Frame({.key = key, .payload = static_cast<size_t>(random() % 1200)});
    for (int fd : {program_->xdp_fd(), program_->tc_fd()}) {
      const Outcome run = RunOn(fd, in);
      ASSERT_THAT(run.verdict, ::testing::AnyOf(static_cast<uint32_t>(XDP_TX), static_cast<uint32_t>(TC_ACT_REDIRECT)));
      ASSERT_EQ(Checksum(&run.out[kIp], 20), 0) << "iteration " << i;
      ASSERT_EQ(Get16(run.out, kUdp + 6), UdpChecksum(run.out)) << "iteration " << i;
    }
    ASSERT_TRUE(program_->RemoveFlow(key).ok());
  }
}

struct HandBack {
  const char* name;
  std::vector<uint8_t> frame;
};

std::vector<HandBack> HandBackCases() {
  std::vector<HandBack> cases;
  auto with = [](const char* name, FrameSpec spec) { return HandBack{name, Frame(spec)}; };
  FrameSpec other_source;
  other_source.key.src_ip = Ip("198.51.100.8");
  cases.push_back(with("another source IP (a spoofer)", other_source));
  FrameSpec rebinding;
  rebinding.key.src_port = htons(5006);
  cases.push_back(with("another source port (a NAT rebinding)", rebinding));
  FrameSpec other_port;
  other_port.key.dst_port = htons(40004);
  cases.push_back(with("another relay port", other_port));
  cases.push_back(with("another SSRC", {.ssrc = kSsrc + 1}));
  cases.push_back(with("RTCP sender report (rtcp-mux)", {.second = 200}));
  cases.push_back(with("RTCP receiver report", {.second = 201}));
  cases.push_back(with("STUN binding request", {.first = 0x00, .second = 0x01}));
  cases.push_back(with("DTLS handshake", {.first = 22, .second = 0xfe}));
  cases.push_back(with("RTP version 1", {.first = 0x40}));
  cases.push_back(with("RTP with a header extension", {.first = 0x90}));
  cases.push_back(with("RTP with padding", {.first = 0xa0}));
  cases.push_back(with("RTP whose CSRC list runs past the datagram", {.first = 0x8f, .payload = 40}));
  cases.push_back(with("ZRTP / other (version 0)", {.first = 0x10}));
  std::vector<uint8_t> f = Frame({});
  f[kIp + 6] = 0x20;  // more fragments
  cases.push_back({"first fragment", f});
  f = Frame({});
  f[kIp + 7] = 0x10;  // fragment offset
  cases.push_back({"later fragment", f});
  f = Frame({});
  f[kIp] = 0x46;  // IHL 6: options
  cases.push_back({"IP options", f});
  f = Frame({});
  f[kIp + 4] ^= 0x40;  // the IP id changed in flight: the header checksum no longer holds
  cases.push_back({"bad IPv4 header checksum", f});
  f = Frame({});
  f[kIp + 9] = 6;
  cases.push_back({"TCP", f});
  f = Frame({});
  f[5] = 0x99;  // another host's MAC (a promiscuous interface): tc hands it back; XDP never sees
  cases.push_back({"frame for another host", f});  // those unless promiscuous, and passes it too
  f = Frame({});
  Put16(f, 12, 0x8100);
  cases.push_back({"VLAN tag", f});
  f = Frame({});
  Put16(f, 12, 0x86dd);
  cases.push_back({"IPv6 ethertype", f});
  f = Frame({});
  Put16(f, kUdp + 4, static_cast<uint16_t>(Get16(f, kUdp + 4) - 1));
  cases.push_back({"UDP length disagrees with IP length", f});
  f = Frame({});
  Put16(f, kIp + 2, static_cast<uint16_t>(Get16(f, kIp + 2) + 40));
  Put16(f, kUdp + 4, static_cast<uint16_t>(Get16(f, kUdp + 4) + 40));
  cases.push_back({"lengths longer than the frame", f});
  f = Frame({.payload = 0});
  f.resize(f.size() - 4);
  Put16(f, kIp + 2, static_cast<uint16_t>(Get16(f, kIp + 2) - 4));
  Put16(f, kUdp + 4, static_cast<uint16_t>(Get16(f, kUdp + 4) - 4));
  cases.push_back({"truncated RTP header", f});
  f = Frame({});
  f.resize(kUdp + 4);
  cases.push_back({"truncated UDP header", f});
  return cases;
}

TEST_F(RelayProgramTest, EveryHandBackCasePassesUntouchedOnBothPaths) {
  for (const HandBack& c : HandBackCases()) {
    const Outcome xdp = Xdp(c.frame);
    EXPECT_EQ(xdp.verdict, static_cast<uint32_t>(XDP_PASS)) << c.name;
    EXPECT_EQ(xdp.out, c.frame) << c.name;
    const Outcome tc = Tc(c.frame);
    EXPECT_EQ(tc.verdict, kTcPass) << c.name;
    EXPECT_EQ(tc.out, c.frame) << c.name;
  }
  EXPECT_EQ(Sum(7).packets, 0u) << "nothing handed back counts as the stream's";
}

TEST_F(RelayProgramTest, NothingIsForwardedOnceUserSpaceStopsSayingItIsAlive) {
  ASSERT_TRUE(program_->KeepAliveUntil(MonotonicNow() - absl::Seconds(1)).ok());
  const std::vector<uint8_t> in = Frame({});
  EXPECT_EQ(Xdp(in).verdict, static_cast<uint32_t>(XDP_PASS));
  EXPECT_EQ(Tc(in).verdict, kTcPass);
  ASSERT_TRUE(program_->KeepAliveUntil(MonotonicNow() + absl::Minutes(1)).ok());
  EXPECT_EQ(Xdp(in).verdict, static_cast<uint32_t>(XDP_TX));
}

TEST_F(RelayProgramTest, XdpHandsBackUntilTheNextHopIsKnownAndTcAsksTheKernel) {
  lk_flow_value value = Value();
  std::memset(value.dst_mac, 0, sizeof(value.dst_mac));
  ASSERT_TRUE(program_->UpsertFlow(kKey, value).ok());
  const std::vector<uint8_t> in = Frame({});
  const Outcome xdp = Xdp(in);
  EXPECT_EQ(xdp.verdict, static_cast<uint32_t>(XDP_PASS));
  EXPECT_EQ(xdp.out, in);
  EXPECT_EQ(Tc(in).verdict, static_cast<uint32_t>(TC_ACT_REDIRECT)) << "bpf_redirect_neigh";
}

TEST_F(RelayProgramTest, OnAnInterfaceWithoutLinkLayerTheMacsStay) {
  lk_flow_value value = Value();
  value.flags = LK_FLOW_KEEP_L2;
  std::memset(value.dst_mac, 0, sizeof(value.dst_mac));
  ASSERT_TRUE(program_->UpsertFlow(kKey, value).ok());
  const std::vector<uint8_t> in = Frame({});
  for (int fd : {program_->xdp_fd(), program_->tc_fd()}) {
    const Outcome run = RunOn(fd, in);
    EXPECT_THAT(run.verdict, ::testing::AnyOf(static_cast<uint32_t>(XDP_TX), static_cast<uint32_t>(TC_ACT_REDIRECT)));
    EXPECT_EQ(std::vector<uint8_t>(run.out.begin(), run.out.begin() + 12), std::vector<uint8_t>(in.begin(), in.begin() + 12));
    EXPECT_EQ(Get16(run.out, kUdp + 2), 6000);
  }
}

TEST_F(RelayProgramTest, ARemovedFlowIsHandedBack) {
  ASSERT_TRUE(program_->RemoveFlow(kKey).ok());
  ASSERT_TRUE(program_->RemoveFlow(kKey).ok()) << "removing twice is fine";
  const std::vector<uint8_t> in = Frame({});
  EXPECT_EQ(Xdp(in).verdict, static_cast<uint32_t>(XDP_PASS));
}

TEST_F(RelayProgramTest, CountsSequenceWrapAndJitterInputs) {
  // Three packets 20 ms of RTP clock apart, wrapping the sequence.
  for (uint16_t seq : {uint16_t{65534}, uint16_t{65535}, uint16_t{0}}) {
    const uint32_t timestamp = 16000u + 160u * static_cast<uint16_t>(seq + 2);
    ASSERT_EQ(Xdp(Frame({.seq = seq, .timestamp = timestamp})).verdict, static_cast<uint32_t>(XDP_TX));
  }
  // One behind the highest: reordered, so the highest stays.
  ASSERT_EQ(Xdp(Frame({.seq = 65535})).verdict, static_cast<uint32_t>(XDP_TX));
  const lk_stream_stats stats = Sum(7);
  EXPECT_EQ(stats.packets, 4u);
  EXPECT_EQ(stats.base_seq_ext, 65534u);
  EXPECT_EQ(stats.max_seq_ext, 65536u) << "one wrap, then sequence 0";
  EXPECT_EQ(stats.last_seq, 65535u);
  EXPECT_GT(stats.last_ns, 0u);
}

TEST_F(RelayProgramTest, ResetStreamZeroesItsCounters) {
  ASSERT_EQ(Xdp(Frame({})).verdict, static_cast<uint32_t>(XDP_TX));
  ASSERT_EQ(Sum(7).packets, 1u);
  ASSERT_TRUE(program_->ResetStream(7).ok());
  EXPECT_EQ(Sum(7).packets, 0u);
}

TEST_F(RelayProgramTest, RandomFramesAreNeverForwardedOrChanged) {
  std::mt19937 random(7);
  const std::vector<uint8_t> valid = Frame({});
  for (int i = 0; i < 2000; ++i) {
    // Half start as the matching frame with a few random bytes changed, half are random throughout.
    std::vector<uint8_t> f;
    if (i % 2 == 0) {
      f = valid;
      for (int k = 0; k < 1 + static_cast<int>(random() % 4); ++k) {
        const size_t at = random() % kRtp + 12;  // headers and SSRC (past the MACs)
        const uint8_t was = f[at];
        do f[at] = static_cast<uint8_t>(random()); while (f[at] == was);
      }
      if (random() % 2) f.resize(14 + random() % (f.size() - 14));  // truncated (never below an Ethernet header)
    } else {
      f.resize(14 + random() % 300);
      for (uint8_t& b : f) b = static_cast<uint8_t>(random());
    }
    const Outcome xdp = Xdp(f);
    // For tc the kernel's harness itself refuses an IPv4 ethertype without a whole IPv4 header
    // (such an skb never reaches a tc hook): nothing to check then.
    const Outcome tc = RunOn(program_->tc_fd(), f, /*may_refuse=*/true);
    // A mutation may leave a frame that still matches (e.g. a changed IP id or RTP byte the program
    // does not read); then it must be forwarded correctly, else handed back untouched.
    if (xdp.verdict == static_cast<uint32_t>(XDP_TX)) {
      ASSERT_EQ(Checksum(&xdp.out[kIp], 20), 0) << i;
      continue;
    }
    ASSERT_EQ(xdp.verdict, static_cast<uint32_t>(XDP_PASS)) << i;
    ASSERT_EQ(xdp.out, f) << i;
    if (!tc.ran) continue;
    ASSERT_EQ(tc.verdict, kTcPass) << i;
    ASSERT_EQ(tc.out, f) << i;
  }
}

}  // namespace
}  // namespace latchkey::relay
