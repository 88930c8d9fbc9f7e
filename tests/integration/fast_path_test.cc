// The kernel fast path end to end with the real binaries: latchkey-relay --fast_path=tc in a network
// namespace of this test's own (its loopback carries the calls; loopback has no native XDP, so tc
// is the mode here; XDP runs in the veth e2e test). Latched calls are forwarded by the kernel with
// the figures a user sees still exact; an attacker's packets are never forwarded; a NAT rebinding
// is handed back and relatched; release removes the entries; the media timeout still fires.
// Needs root (namespaces, bpf()): skipped with the reason otherwise.
#include <unistd.h>

#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "media-relay/fastpath/relay_program.h"
#include "tests/integration/support/cluster.h"
#include "tests/integration/support/media.h"
#include "tests/integration/support/udp_peer.h"
#include "tests/support/shell.h"

namespace latchkey {
namespace {

using ::testing::HasSubstr;
using testing::Datagram;
using testing::MetricValue;
using testing::PlaceCall;
using testing::RtpPacket;
using testing::SendStream;
using testing::SeqOf;
using testing::SsrcOf;
using testing::UdpPeer;

constexpr uint32_t kCallerSsrc = 0x11111111;
constexpr uint32_t kCalleeSsrc = 0x22222222;
constexpr uint8_t kAttackMark = 0xee;

class FastPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the kernel fast path needs root (bpf(), a network namespace)";
    if (const std::string why = testing::EnterPrivateNetworkNamespace(); !why.empty()) GTEST_SKIP() << why;
    if (auto probe = relay::RelayProgram::Load(); !probe.ok()) GTEST_SKIP() << "bpf() refused here: " << probe.status();
    auto control = testing::LocalControl::Start("worker_heartbeat_interval { nanos: 200000000 }");
    ASSERT_TRUE(control.ok()) << control.status();
    control_ = *std::move(control);
    stub_ = control_->Stub();
    auto relay = testing::LocalRelay::Start(*control_, "relay-fast", {"--threads=2", "--fast_path=tc"});
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = *std::move(relay);
    ASSERT_TRUE(testing::WaitForWorker(*stub_, "relay-fast", absl::Seconds(10)));
    ASSERT_THAT(relay_->Metrics(), HasSubstr("latchkey_relay_fast_path{mode=\"tc\"} 1"));
  }

  v1::Session GetSession(const std::string& id) { return testing::GetSession(*stub_, id); }
  double Metric(const std::string& series) { return MetricValue(relay_->Metrics(), series); }
  double KernelPackets() { return Metric("latchkey_relay_packets_total{direction=\"in\",path=\"kernel\"}"); }

  // A call between two phones on this namespace's loopback whose SDPs name their real ports.
  testing::Call Place(const std::string& call_id, UdpPeer& caller, UdpPeer& callee,
                      absl::Duration media_timeout = absl::ZeroDuration()) {
    return PlaceCall(*stub_, call_id, callee.port(), media_timeout, testing::AudioSdp("127.0.0.1", caller.port()));
  }

  std::unique_ptr<testing::LocalControl> control_;
  std::unique_ptr<v1::NatControlService::Stub> stub_;
  std::unique_ptr<testing::LocalRelay> relay_;
};

TEST_F(FastPathTest, ALatchedCallIsForwardedByTheKernelWithExactFigures) {
  UdpPeer caller, callee;
  const testing::Call call = Place("fast-1@pbx", caller, callee);
  std::thread back([&] { SendStream(callee, call.callee_relay, kCalleeSsrc, 1000, 100); });
  SendStream(caller, call.caller_relay, kCallerSsrc, 5000, 100);
  back.join();
  const std::vector<Datagram> at_callee = callee.Drain(absl::Milliseconds(300));
  const std::vector<Datagram> at_caller = caller.Drain(absl::Milliseconds(100));

  // Everything arrived, from the relay port each phone sends to, in order.
  EXPECT_EQ(at_callee.size(), 100u);
  EXPECT_EQ(at_caller.size(), 100u);
  for (const Datagram& d : at_callee) {
    EXPECT_EQ(d.from_port, call.callee_relay);
    EXPECT_EQ(SsrcOf(d), kCallerSsrc);
  }
  for (size_t i = 1; i < at_callee.size(); ++i) EXPECT_EQ(SeqOf(at_callee[i]), SeqOf(at_callee[i - 1]) + 1);

  // The kernel carried most of it (the socket path only the packets before the entries went in),
  // and the figures a user sees add both paths up exactly (the kernel's are folded in each second).
  ASSERT_TRUE(testing::WaitFor([&] { return KernelPackets() >= 180; }, absl::Seconds(3))) << relay_->Metrics();
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        const v1::Session s = GetSession(call.id);
        return s.caller().stats().packets_in() == 100 && s.callee().stats().packets_in() == 100 &&
               s.callee().stats().packets_out() == 100 && s.caller().stats().packets_out() == 100;
      },
      absl::Seconds(3)))
      << GetSession(call.id).DebugString();
  const v1::Session s = GetSession(call.id);
  EXPECT_EQ(s.caller().stats().packets_lost(), 0);
  EXPECT_EQ(Metric("latchkey_relay_fast_path_flows"), 2);
  EXPECT_EQ(Metric("latchkey_relay_fast_path_flow_changes_total{change=\"failed\"}"), 0);
}

TEST_F(FastPathTest, AnAttackerIsNeverForwardedAndANatRebindingRelatches) {
  UdpPeer caller, callee, attacker, rebound;
  const testing::Call call = Place("fast-2@pbx", caller, callee);
  std::thread back([&] { SendStream(callee, call.callee_relay, kCalleeSsrc, 1000, 150); });
  SendStream(caller, call.caller_relay, kCallerSsrc, 1, 25);  // latched, entries in
  ASSERT_TRUE(testing::WaitFor([&] { return Metric("latchkey_relay_fast_path_flows") == 2; }, absl::Seconds(2)));

  // An attacker who sees the stream sprays its next packets (same SSRC, the sequence just ahead)
  // from another port while the caller goes on talking through the kernel.
  std::thread spray([&] {
    for (int i = 0; i < 50; ++i) {
      std::vector<uint8_t> packet = RtpPacket(kCallerSsrc, static_cast<uint16_t>(26 + i), 160u * (26 + i));
      packet.back() = kAttackMark;
      attacker.SendTo(call.caller_relay, packet);
      absl::SleepFor(absl::Milliseconds(10));
    }
  });
  SendStream(caller, call.caller_relay, kCallerSsrc, 26, 25);
  spray.join();
  std::vector<Datagram> at_callee = callee.Drain(absl::Milliseconds(100));
  for (const Datagram& d : at_callee) ASSERT_NE(d.data.back(), kAttackMark) << "the attacker's packet was forwarded";
  EXPECT_EQ(at_callee.size(), 50u);
  EXPECT_EQ(GetSession(call.id).caller().stats().latched_source().port(), caller.port());

  // The caller's NAT rebinds: the same stream from a new port after a silence. Handed back by
  // the kernel (an unknown source), judged by the latch, relatched, and back in the kernel.
  absl::SleepFor(absl::Milliseconds(400));
  const double kernel_before = KernelPackets();
  SendStream(rebound, call.caller_relay, kCallerSsrc, 51, 60);
  back.join();
  at_callee = callee.Drain(absl::Milliseconds(200));
  size_t from_rebound = 0;
  for (const Datagram& d : at_callee) {
    ASSERT_NE(d.data.back(), kAttackMark);
    if (SsrcOf(d) == kCallerSsrc) ++from_rebound;
  }
  EXPECT_GE(from_rebound, 45u) << "relatched within a second";
  EXPECT_EQ(GetSession(call.id).caller().stats().latched_source().port(), rebound.port());
  EXPECT_TRUE(testing::WaitFor([&] { return KernelPackets() >= kernel_before + 30; }, absl::Seconds(3)))
      << "the rebound stream is on the fast path again: " << KernelPackets() << " vs " << kernel_before;
  EXPECT_GE(Metric("latchkey_relay_relatches_total"), 1);
}

TEST_F(FastPathTest, ANewSsrcFromTheLockedPhoneMovesTheEntry) {
  UdpPeer caller, callee;
  const testing::Call call = Place("fast-ssrc@pbx", caller, callee);
  std::thread back([&] { SendStream(callee, call.callee_relay, kCalleeSsrc, 1000, 150); });
  SendStream(caller, call.caller_relay, kCallerSsrc, 1, 25);
  ASSERT_TRUE(testing::WaitFor([&] { return Metric("latchkey_relay_fast_path_flows") == 2; }, absl::Seconds(2)));
  // Music on hold, or a new stream after a re-INVITE: same address, another SSRC. The socket
  // path carries it at once; the kernel's entry follows within a second.
  constexpr uint32_t kNewSsrc = 0x33333333;
  const std::string socket_in = "latchkey_relay_packets_total{direction=\"in\",path=\"socket\"}";
  const double socket_before = Metric(socket_in);  // the callee's stream is in the kernel meanwhile
  SendStream(caller, call.caller_relay, kNewSsrc, 7000, 100);
  back.join();
  size_t new_stream = 0;
  for (const Datagram& d : callee.Drain(absl::Milliseconds(200))) new_stream += SsrcOf(d) == kNewSsrc;
  EXPECT_EQ(new_stream, 100u);
  EXPECT_LE(Metric(socket_in) - socket_before, 5) << "the new stream stayed on the socket path";
}

TEST_F(FastPathTest, ReleaseRemovesTheEntries) {
  UdpPeer caller, callee;
  const testing::Call call = Place("fast-3@pbx", caller, callee);
  std::thread back([&] { SendStream(callee, call.callee_relay, kCalleeSsrc, 1000, 20); });
  SendStream(caller, call.caller_relay, kCallerSsrc, 1, 20);
  back.join();
  ASSERT_TRUE(testing::WaitFor([&] { return Metric("latchkey_relay_fast_path_flows") == 2; }, absl::Seconds(2)));
  callee.Drain(absl::Milliseconds(100));

  v1::ReleaseSessionRequest release;
  release.set_session_id(call.id);
  v1::ReleaseSessionResponse released;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->ReleaseSession(&context, release, &released).ok());
  ASSERT_TRUE(testing::WaitFor([&] { return Metric("latchkey_relay_fast_path_flows") == 0; }, absl::Seconds(2)));
  SendStream(caller, call.caller_relay, kCallerSsrc, 21, 10);
  EXPECT_TRUE(callee.Drain(absl::Milliseconds(200)).empty()) << "forwarded after release";
  EXPECT_EQ(Metric("latchkey_relay_fast_path_flow_changes_total{change=\"removed\"}"), 2);
}

TEST_F(FastPathTest, TheMediaTimeoutCountsKernelPacketsAndStillFires) {
  UdpPeer caller, callee;
  grpc::ClientContext watch_context;
  watch_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  v1::WatchSessionsRequest watch;
  watch.set_call_id("fast-4@pbx");
  auto events = stub_->WatchSessions(&watch_context, watch);
  events->WaitForInitialMetadata();
  const testing::Call call = Place("fast-4@pbx", caller, callee, absl::Seconds(2));
  // Three seconds of media, all but the first packets through the kernel: longer than the timeout.
  std::thread back([&] { SendStream(callee, call.callee_relay, kCalleeSsrc, 1000, 150); });
  SendStream(caller, call.caller_relay, kCallerSsrc, 1, 150);
  back.join();
  EXPECT_EQ(GetSession(call.id).state(), v1::SESSION_STATE_ANSWERED) << "timed out while the kernel carried media";
  const absl::Time silent_since = absl::Now();
  v1::WatchSessionsResponse event;
  bool timed_out = false;
  while (!timed_out && events->Read(&event)) timed_out = event.type() == v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT;
  watch_context.TryCancel();
  ASSERT_TRUE(timed_out);
  EXPECT_LT(absl::Now() - silent_since, absl::Seconds(5));
  EXPECT_TRUE(testing::WaitFor([&] { return Metric("latchkey_relay_fast_path_flows") == 0; }, absl::Seconds(3)));
}

}  // namespace
}  // namespace latchkey
