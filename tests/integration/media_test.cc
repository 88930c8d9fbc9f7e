// Media through the real relay on loopback: a full call whose phones send from ports other than
// their SDP ports, latching, exact counts, an attacker spraying the relay ports, release.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/support/cluster.h"
#include "tests/integration/support/media.h"
#include "tests/integration/support/udp_peer.h"
#include "tests/support/io_uring_probe.h"

namespace latchkey {
namespace {

using ::testing::HasSubstr;
using testing::Datagram;
using testing::RtpPacket;
using testing::UdpPeer;

constexpr uint32_t kCallerSsrc = 0x11111111;
constexpr uint32_t kCalleeSsrc = 0x22222222;

using testing::AudioSdp;

using testing::Call;
using testing::PlaceCall;
using testing::SendStream;
using testing::SeqOf;
using testing::SsrcOf;

// Every test runs once per packet I/O of the relay.
class MediaTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "io_uring" && !testing::KernelAllowsIoUring()) {
      GTEST_SKIP() << "io_uring_setup refused here (kernel or seccomp)";
    }
    auto control = testing::LocalControl::Start("worker_heartbeat_interval { nanos: 200000000 }");
    ASSERT_TRUE(control.ok()) << control.status();
    control_ = *std::move(control);
    stub_ = control_->Stub();
    auto relay = testing::LocalRelay::Start(*control_, "relay-media",
                                            {"--threads=2", "--packet_io=" + GetParam()});
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = *std::move(relay);
    ASSERT_TRUE(testing::WaitForWorker(*stub_, "relay-media", absl::Seconds(10)));
  }

  v1::Session GetSession(const std::string& id) { return testing::GetSession(*stub_, id); }

  std::unique_ptr<testing::LocalControl> control_;
  std::unique_ptr<v1::NatControlService::Stub> stub_;
  std::unique_ptr<testing::LocalRelay> relay_;
};

TEST_P(MediaTest, CallLatchesBothWaysCountsExactlyAndResistsAnAttacker) {
  UdpPeer caller;      // behind NAT: its SDP claims 192.168.1.20:4000, it really sends from here
  UdpPeer callee_sdp;  // the callee's announced media port (early media goes here before it latches)
  UdpPeer callee;      // where the callee really sends from
  UdpPeer attacker;

  grpc::ClientContext watch_context;
  v1::WatchSessionsRequest watch;
  watch.set_call_id("media-1@pbx");
  auto events = stub_->WatchSessions(&watch_context, watch);
  events->WaitForInitialMetadata();

  v1::AllocateSessionRequest offer;
  offer.set_call_id("media-1@pbx");
  offer.set_from_tag("a");
  offer.set_sdp(AudioSdp("192.168.1.20", 4000));
  *offer.mutable_signaling_source() = testing::Address("127.0.0.1", 5060);
  v1::AllocateSessionResponse offered;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->AllocateSession(&context, offer, &offered).ok());
  }
  const std::string id = offered.session().session_id();
  EXPECT_EQ(offered.session().caller().latching_mode(), v1::LATCHING_MODE_SIGNALING_SOURCE);

  v1::AnswerSessionRequest answer;
  answer.set_session_id(id);
  answer.set_to_tag("b");
  answer.set_sdp(AudioSdp("127.0.0.1", callee_sdp.port()));
  *answer.mutable_signaling_source() = testing::Address("127.0.0.1", 5062);
  v1::AnswerSessionResponse answered;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->AnswerSession(&context, answer, &answered).ok());
  }
  const uint16_t caller_relay = static_cast<uint16_t>(answered.session().caller().relay(0).rtp().port());
  const uint16_t callee_relay = static_cast<uint16_t>(answered.session().callee().relay(0).rtp().port());

  // The caller speaks first. Until the callee's own packets arrive, the relay sends to the callee's
  // SDP address (public, so sendable): early media is not lost. The NATed caller can only be reached
  // once it has sent (its SDP address is private), so it starts first here.
  std::thread caller_sends([&] { SendStream(caller, caller_relay, kCallerSsrc, 5000, 50); });
  absl::SleepFor(absl::Milliseconds(150));
  std::thread callee_sends([&] { SendStream(callee, callee_relay, kCalleeSsrc, 1000, 50); });
  callee_sends.join();
  caller_sends.join();

  std::vector<Datagram> at_caller = caller.Drain(absl::Milliseconds(300));
  std::vector<Datagram> at_callee = callee.Drain(absl::Milliseconds(100));
  std::vector<Datagram> at_callee_sdp = callee_sdp.Drain(absl::Milliseconds(100));

  // Everything the relay sent reached the phones and came from the port each phone sends to.
  const v1::Session s = GetSession(id);
  EXPECT_EQ(s.caller().stats().packets_in(), 50u);
  EXPECT_EQ(s.callee().stats().packets_in(), 50u);
  EXPECT_EQ(s.caller().stats().packets_out(), at_caller.size());
  EXPECT_EQ(s.callee().stats().packets_out(), at_callee.size() + at_callee_sdp.size());
  for (const Datagram& d : at_caller) {
    EXPECT_EQ(d.from_port, caller_relay);
    EXPECT_EQ(SsrcOf(d), kCalleeSsrc);
  }
  for (const auto* batch : {&at_callee, &at_callee_sdp}) {
    for (const Datagram& d : *batch) {
      EXPECT_EQ(d.from_port, callee_relay);
      EXPECT_EQ(SsrcOf(d), kCallerSsrc);
    }
  }
  // Probation costs a few packets per direction, never more: no lost first second.
  EXPECT_GE(at_caller.size(), 45u);
  EXPECT_GE(at_callee.size() + at_callee_sdp.size(), 45u);
  EXPECT_GE(at_callee_sdp.size(), 3u);  // before the callee latched
  EXPECT_GE(at_callee.size(), 30u);     // after
  // In order, no duplicates.
  for (size_t i = 1; i < at_caller.size(); ++i) EXPECT_EQ(SeqOf(at_caller[i]), SeqOf(at_caller[i - 1]) + 1);

  // Both legs latched onto the real sources, not the SDP claims.
  ASSERT_TRUE(s.caller().stats().has_latched_source());
  EXPECT_EQ(s.caller().stats().latched_source().port(), caller.port());
  ASSERT_TRUE(s.callee().stats().has_latched_source());
  EXPECT_EQ(s.callee().stats().latched_source().port(), callee.port());
  std::set<v1::Side> latched;
  v1::WatchSessionsResponse event;
  while (latched.size() < 2 && events->Read(&event)) {
    if (event.type() == v1::SESSION_EVENT_TYPE_LATCHED) {
      for (v1::Side side : {v1::SIDE_CALLER, v1::SIDE_CALLEE}) {
        const v1::Leg& leg = side == v1::SIDE_CALLER ? event.session().caller() : event.session().callee();
        if (leg.stats().has_latched_source()) latched.insert(side);
      }
    }
  }
  watch_context.TryCancel();
  EXPECT_EQ(latched.size(), 2u);

  // RTP Bleed: an attacker sprays both relay ports during the call. It gets nothing back and
  // takes over nothing; the phones hear only each other.
  std::atomic<bool> spraying{true};
  std::thread spray([&] {
    for (int i = 0; i < 400 && spraying; ++i) {
      attacker.SendTo(caller_relay, RtpPacket(0xBAD00000u + i, static_cast<uint16_t>(i), 160u * i));
      attacker.SendTo(callee_relay, RtpPacket(0xBAD00000u + i, static_cast<uint16_t>(i), 160u * i));
      absl::SleepFor(absl::Milliseconds(2));
    }
  });
  std::thread more_callee([&] { SendStream(callee, callee_relay, kCalleeSsrc, 1050, 25); });
  SendStream(caller, caller_relay, kCallerSsrc, 5050, 25);
  more_callee.join();
  {
    // Heartbeats carry the relay's packet rate and CPU to control (placement and operators use them).
    v1::ListWorkersResponse workers;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ListWorkers(&context, v1::ListWorkersRequest(), &workers).ok());
    ASSERT_EQ(workers.workers_size(), 1);
    EXPECT_GT(workers.workers(0).load().packets_per_second(), 0);
    EXPECT_GT(workers.workers(0).load().cpu(), 0);
  }
  spraying = false;
  spray.join();
  EXPECT_FALSE(attacker.Receive(absl::Milliseconds(300)).has_value());
  for (const Datagram& d : caller.Drain(absl::Milliseconds(100))) EXPECT_EQ(SsrcOf(d), kCalleeSsrc);
  for (const Datagram& d : callee.Drain(absl::Milliseconds(100))) EXPECT_EQ(SsrcOf(d), kCallerSsrc);
  const v1::Session after = GetSession(id);
  EXPECT_EQ(after.caller().stats().latched_source().port(), caller.port());
  EXPECT_EQ(after.callee().stats().latched_source().port(), callee.port());
  EXPECT_EQ(after.caller().stats().relatch_count(), 0u);
  EXPECT_GE(after.caller().stats().packets_dropped(), 100u);
  const std::string metrics = relay_->Metrics();
  EXPECT_THAT(metrics, HasSubstr("latchkey_relay_latches_total 2"));
  EXPECT_THAT(metrics, HasSubstr("latchkey_relay_cpu_seconds_total "));
  EXPECT_THAT(metrics, ::testing::Not(HasSubstr("latchkey_relay_cpu_seconds_total 0\n")));
  EXPECT_THAT(metrics, HasSubstr("latchkey_relay_drops_total{reason=\"wrong_source\"}"));

  // Released: the relay ports stop forwarding.
  v1::ReleaseSessionRequest release;
  release.set_session_id(id);
  v1::ReleaseSessionResponse released;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ReleaseSession(&context, release, &released).ok());
  }
  EXPECT_GE(released.session().caller().stats().packets_in(), 75u);
  EXPECT_TRUE(testing::WaitFor(
      [&] { return relay_->Metrics().find("latchkey_relay_sessions_closed_total{reason=\"released\"} 1") != std::string::npos; },
      absl::Seconds(2)));
  absl::SleepFor(absl::Milliseconds(100));
  caller.SendTo(caller_relay, RtpPacket(kCallerSsrc, 6000, 0));
  EXPECT_FALSE(callee.Receive(absl::Milliseconds(300)).has_value());
}

}  // namespace
}  // namespace latchkey

namespace latchkey {
namespace {

// Sets up a call whose caller is NATed (private SDP) and callee public on loopback.
// A neighbour on the caller's IP streams amid the latched caller's packets: refused, and watchers
// see it as it happens (the leg and the contender), once.
TEST_P(MediaTest, ContestedLatchIsPublishedWithTheContender) {
  UdpPeer caller, callee, neighbour;
  grpc::ClientContext watch_context;
  watch_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));  // Read() ends by then
  v1::WatchSessionsRequest watch;
  watch.set_call_id("contest@pbx");
  auto events = stub_->WatchSessions(&watch_context, watch);
  events->WaitForInitialMetadata();
  const Call call = PlaceCall(*stub_, "contest@pbx", callee.port());
  std::thread rival([&] {
    absl::SleepFor(absl::Milliseconds(150));  // after the caller latched
    SendStream(neighbour, call.caller_relay, 0x0BAD0BAD, 500, 30);
  });
  SendStream(caller, call.caller_relay, kCallerSsrc, 1, 40);
  rival.join();
  EXPECT_TRUE(callee.Drain(absl::Milliseconds(100)).size() >= 30);
  EXPECT_EQ(GetSession(call.id).caller().stats().latched_source().port(), caller.port());

  v1::WatchSessionsResponse event;
  int contests = 0;
  while (events->Read(&event)) {
    if (event.type() != v1::SESSION_EVENT_TYPE_LATCH_CONTESTED) continue;
    ++contests;
    EXPECT_EQ(event.side(), v1::SIDE_CALLER);
    EXPECT_EQ(event.source().port(), neighbour.port());
    EXPECT_EQ(event.session().session_id(), call.id);
    break;
  }
  EXPECT_EQ(contests, 1);
  watch_context.TryCancel();
  EXPECT_TRUE(testing::WaitFor(
      [&] { return absl::StrContains(relay_->Metrics(), "latchkey_relay_latch_contests_total 1\n"); }, absl::Seconds(2)));
}

TEST_P(MediaTest, MediaFromAnotherRelaysPortNeverLatchesALeg) {
  // A second relay: control tells the first its port range in the heartbeat answers.
  auto other = testing::LocalRelay::Start(*control_, "relay-other");
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(testing::WaitForWorker(*stub_, "relay-other", absl::Seconds(10)));
  // Its range carries no session, so a test socket can take one of its ports: what the first relay
  // sees is then exactly what a media loop between the two relays would send it.
  {
    v1::DrainWorkerRequest drain;  // so the call lands on relay-media; a draining relay's range still counts
    drain.set_worker_id("relay-other");
    v1::DrainWorkerResponse drained;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->DrainWorker(&context, drain, &drained).ok());
  }
  // The first relay hears of the second with its next heartbeat answer.
  ASSERT_TRUE(testing::WaitFor(
      [&] { return absl::StrContains(relay_->Metrics(), "latchkey_relay_known_relays 2\n"); }, absl::Seconds(5)));
  UdpPeer looped(false, static_cast<uint16_t>((*other)->port_min() + 2));
  ASSERT_NE(looped.port(), 0);
  UdpPeer caller;

  v1::AllocateSessionRequest offer;
  offer.set_call_id("loop-1@pbx");
  offer.set_from_tag("a");
  offer.set_sdp(AudioSdp("192.168.1.20", 4000));
  *offer.mutable_signaling_source() = testing::Address("127.0.0.1", 5060);
  offer.mutable_options()->set_latching_mode(v1::LATCHING_MODE_FIRST_PACKET);  // the most trusting mode
  v1::AllocateSessionResponse offered;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->AllocateSession(&context, offer, &offered).ok());
  }
  ASSERT_EQ(offered.session().worker_id(), "relay-media") << "placed on the relay this test does not watch";
  const std::string id = offered.session().session_id();
  const uint16_t caller_relay = static_cast<uint16_t>(offered.session().caller().relay(0).rtp().port());
  {
    // Answered: the caller's leg is open (the caller learns its relay port from the answer).
    v1::AnswerSessionRequest answer;
    answer.set_session_id(id);
    answer.set_to_tag("b");
    answer.set_sdp(AudioSdp("127.0.0.1", 4002));
    *answer.mutable_signaling_source() = testing::Address("127.0.0.1", 5062);
    v1::AnswerSessionResponse answered;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->AnswerSession(&context, answer, &answered).ok());
  }

  // Well past probation, at a media stream's pace: every packet is refused as a loop.
  SendStream(looped, caller_relay, 0x1007, 100, 20);
  EXPECT_FALSE(GetSession(id).caller().stats().has_latched_source()) << "latched onto another relay's port";
  EXPECT_THAT(relay_->Metrics(), HasSubstr("latchkey_relay_drops_total{reason=\"loop\"} 20\n"));

  // The real endpoint still latches.
  SendStream(caller, caller_relay, 0x2002, 1, 10);
  ASSERT_TRUE(testing::WaitFor([&] { return GetSession(id).caller().stats().has_latched_source(); }, absl::Seconds(2)));
  EXPECT_EQ(GetSession(id).caller().stats().latched_source().port(), caller.port());
}

TEST_P(MediaTest, SilentCallEndsWithMediaTimeout) {
  UdpPeer caller, callee;
  grpc::ClientContext watch_context;
  v1::WatchSessionsRequest watch;
  watch.set_call_id("timeout@pbx");
  auto events = stub_->WatchSessions(&watch_context, watch);
  events->WaitForInitialMetadata();
  const Call call = PlaceCall(*stub_, "timeout@pbx", callee.port(), absl::Seconds(1));
  SendStream(caller, call.caller_relay, kCallerSsrc, 1, 10);  // 200 ms of audio, then silence
  const absl::Time silent_since = absl::Now();

  v1::WatchSessionsResponse event;
  bool timed_out = false;
  while (!timed_out && events->Read(&event)) timed_out = event.type() == v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT;
  watch_context.TryCancel();
  ASSERT_TRUE(timed_out);
  // 1 s timeout, checked every second by the relay.
  EXPECT_LT(absl::Now() - silent_since, absl::Seconds(3));
  EXPECT_EQ(event.session().state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(GetSession(call.id).end_reason(), v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT);
  EXPECT_THAT(relay_->Metrics(), HasSubstr("latchkey_relay_media_timeouts_total 1"));
  EXPECT_THAT(control_->Metrics(), HasSubstr("latchkey_session_ends_total{reason=\"media_timeout\"} 1"));
}

TEST_P(MediaTest, ReinviteMovingTheCalleeKeepsMediaFlowing) {
  UdpPeer caller, callee_old, callee_new;
  const Call call = PlaceCall(*stub_, "move@pbx", callee_old.port());
  std::thread old_leg([&] { SendStream(callee_old, call.callee_relay, kCalleeSsrc, 1, 10); });
  SendStream(caller, call.caller_relay, kCallerSsrc, 1, 10);
  old_leg.join();
  EXPECT_FALSE(callee_old.Drain(absl::Milliseconds(100)).empty());

  // The callee moves (new address in a re-INVITE) and a new SSRC: signalled change, media follows.
  v1::UpdateSessionRequest update;
  update.set_session_id(call.id);
  update.set_side(v1::SIDE_CALLEE);
  update.set_sdp(AudioSdp("127.0.0.1", callee_new.port()));
  *update.mutable_signaling_source() = testing::Address("127.0.0.1", 5062);
  v1::UpdateSessionResponse updated;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->UpdateSession(&context, update, &updated).ok());
  }
  EXPECT_EQ(updated.session().callee().relay(0).rtp().port(), call.callee_relay);  // same relay ports
  absl::SleepFor(absl::Milliseconds(50));
  std::thread new_leg([&] { SendStream(callee_new, call.callee_relay, 0x33333333, 7000, 25); });
  SendStream(caller, call.caller_relay, kCallerSsrc, 11, 25);
  new_leg.join();
  std::vector<Datagram> at_new = callee_new.Drain(absl::Milliseconds(200));
  std::vector<Datagram> at_caller = caller.Drain(absl::Milliseconds(100));
  EXPECT_GE(at_new.size(), 22u);  // nothing but the first packets after the switch is lost
  size_t from_new = 0;
  for (const Datagram& d : at_caller) from_new += SsrcOf(d) == 0x33333333;
  EXPECT_GE(from_new, 20u);
  EXPECT_TRUE(callee_old.Drain(absl::Milliseconds(50)).empty());
}

TEST_P(MediaTest, SigtermDrainsRelayAndExitsWhenCallsEnd) {
  UdpPeer caller, callee;
  const Call call = PlaceCall(*stub_, "drain@pbx", callee.port());
  ASSERT_NE(call.caller_relay, 0);
  ::kill(relay_->process().pid(), SIGTERM);
  // Not ready while draining, and control stops placing calls there.
  EXPECT_TRUE(testing::WaitFor([&] { return !relay_->WaitForServing(absl::Milliseconds(100)).ok(); },
                               absl::Seconds(3)));
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        v1::ListWorkersResponse workers;
        grpc::ClientContext context;
        return stub_->ListWorkers(&context, v1::ListWorkersRequest(), &workers).ok() && workers.workers_size() == 1 &&
               workers.workers(0).state() == v1::WORKER_STATE_DRAINING;
      },
      absl::Seconds(3)));
  v1::AllocateSessionRequest offer;
  offer.set_call_id("drain-2@pbx");
  offer.set_from_tag("a");
  offer.set_sdp(AudioSdp("192.168.1.20", 4000));
  *offer.mutable_signaling_source() = testing::Address("127.0.0.1", 5060);
  v1::AllocateSessionResponse offered;
  {
    grpc::ClientContext context;
    EXPECT_EQ(stub_->AllocateSession(&context, offer, &offered).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  // The running call still relays media.
  std::thread callee_sends([&] { SendStream(callee, call.callee_relay, kCalleeSsrc, 1, 10); });
  SendStream(caller, call.caller_relay, kCallerSsrc, 1, 10);
  callee_sends.join();
  EXPECT_FALSE(callee.Drain(absl::Milliseconds(100)).empty());
  EXPECT_TRUE(relay_->process().running());
  // Releasing the last call lets the relay exit cleanly.
  v1::ReleaseSessionRequest release;
  release.set_session_id(call.id);
  v1::ReleaseSessionResponse released;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->ReleaseSession(&context, release, &released).ok());
  }
  const int status = relay_->process().Wait(absl::Seconds(5));
  ASSERT_NE(status, -1) << "relay still running after its last call ended";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace latchkey

namespace latchkey {
namespace {

class MediaBridgeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MediaBridgeTest, Ipv6PhoneTalksToIpv4Callee) {
  UdpPeer probe(/*ipv6=*/true);
  if (probe.port() == 0) GTEST_SKIP() << "no IPv6 loopback here";
  if (GetParam() == "io_uring" && !testing::KernelAllowsIoUring()) GTEST_SKIP() << "io_uring_setup refused here";
  auto control = testing::LocalControl::Start();
  ASSERT_TRUE(control.ok()) << control.status();
  auto stub = (*control)->Stub();
  auto relay = testing::LocalRelay::Start(**control, "relay-dual",
                                          {"--media_ip=127.0.0.1,::1", "--packet_io=" + GetParam()});
  ASSERT_TRUE(relay.ok()) << relay.status();
  ASSERT_TRUE(testing::WaitForWorker(*stub, "relay-dual", absl::Seconds(10)));

  UdpPeer caller(/*ipv6=*/true), callee;
  v1::AllocateSessionRequest offer;
  offer.set_call_id("dual@pbx");
  offer.set_from_tag("a");
  offer.set_sdp(absl::StrCat("v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio ", caller.port(),
                             " RTP/AVP 0\r\n"));
  *offer.mutable_signaling_source() = testing::Address("::1", 5060);
  offer.mutable_options()->set_callee_ip_family(v1::IP_FAMILY_IPV4);
  v1::AllocateSessionResponse offered;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->AllocateSession(&context, offer, &offered).ok());
  }
  EXPECT_THAT(offered.sdp(), HasSubstr("c=IN IP4 127.0.0.1"));
  v1::AnswerSessionRequest answer;
  answer.set_session_id(offered.session().session_id());
  answer.set_to_tag("b");
  answer.set_sdp(AudioSdp("127.0.0.1", callee.port()));
  *answer.mutable_signaling_source() = testing::Address("127.0.0.1", 5062);
  v1::AnswerSessionResponse answered;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub->AnswerSession(&context, answer, &answered).ok());
  }
  EXPECT_THAT(answered.sdp(), HasSubstr("c=IN IP6 ::1"));
  const auto caller_relay = static_cast<uint16_t>(answered.session().caller().relay(0).rtp().port());
  const auto callee_relay = static_cast<uint16_t>(answered.session().callee().relay(0).rtp().port());

  std::thread callee_sends([&] { SendStream(callee, callee_relay, kCalleeSsrc, 1, 20); });
  SendStream(caller, caller_relay, kCallerSsrc, 1, 20);
  callee_sends.join();
  // Both SDP addresses are exact: each side latches on its first packet, nothing is lost.
  std::vector<Datagram> at_callee = callee.Drain(absl::Milliseconds(200));
  std::vector<Datagram> at_caller = caller.Drain(absl::Milliseconds(100));
  EXPECT_EQ(at_callee.size(), 20u);
  EXPECT_EQ(at_caller.size(), 20u);
  for (const Datagram& d : at_callee) EXPECT_EQ(SsrcOf(d), kCallerSsrc);
  for (const Datagram& d : at_caller) EXPECT_EQ(SsrcOf(d), kCalleeSsrc);
}

INSTANTIATE_TEST_SUITE_P(PacketIo, MediaTest, ::testing::Values("epoll", "io_uring"),
                         [](const auto& info) { return info.param; });
INSTANTIATE_TEST_SUITE_P(PacketIo, MediaBridgeTest, ::testing::Values("epoll", "io_uring"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace latchkey
