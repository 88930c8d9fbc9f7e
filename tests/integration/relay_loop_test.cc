// The relay refuses to be a proxy or a loop, whatever an offer says (issue: STRICT sent to any SDP
// address; two legs naming relay ports looped a packet for ever; a relay knew its peers' ranges only
// from its first heartbeat). Real control and relays on loopback.
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/support/cluster.h"
#include "tests/integration/support/media.h"
#include "tests/integration/support/udp_peer.h"

namespace latchkey {
namespace {

using testing::UdpPeer;

// A phone's stream of `count` packets from sequence 100.
void SendStream(UdpPeer& from, uint16_t to_port, uint32_t ssrc, int count) {
  testing::SendStream(from, to_port, ssrc, 100, count);
}

struct Placed {
  std::string id;
  uint16_t caller_relay = 0;
  uint16_t callee_relay = 0;
};

class RelayLoopTest : public ::testing::Test {
 protected:
  void Start(const std::string& control_config) {
    auto control = testing::LocalControl::Start(control_config);
    ASSERT_TRUE(control.ok()) << control.status();
    control_ = *std::move(control);
    stub_ = control_->Stub();
    auto relay = testing::LocalRelay::Start(*control_, "relay-loop");
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = *std::move(relay);
    ASSERT_TRUE(testing::WaitForWorker(*stub_, "relay-loop", absl::Seconds(10)));
  }

  Placed Place(const std::string& call_id, const std::string& caller_sdp, const std::string& callee_sdp,
               v1::LatchingMode mode) {
    Placed placed;
    v1::AllocateSessionRequest offer;
    offer.set_call_id(call_id);
    offer.set_from_tag("a");
    offer.set_sdp(caller_sdp);
    *offer.mutable_signaling_source() = testing::Address("127.0.0.1", 5060);
    offer.mutable_options()->set_latching_mode(mode);
    v1::AllocateSessionResponse offered;
    {
      grpc::ClientContext context;
      grpc::Status status = stub_->AllocateSession(&context, offer, &offered);
      EXPECT_TRUE(status.ok()) << status.error_message();
    }
    placed.id = offered.session().session_id();
    v1::AnswerSessionRequest answer;
    answer.set_session_id(placed.id);
    answer.set_to_tag("b");
    answer.set_sdp(callee_sdp);
    *answer.mutable_signaling_source() = testing::Address("127.0.0.1", 5062);
    v1::AnswerSessionResponse answered;
    grpc::ClientContext context;
    EXPECT_TRUE(stub_->AnswerSession(&context, answer, &answered).ok());
    placed.caller_relay = static_cast<uint16_t>(answered.session().caller().relay(0).rtp().port());
    placed.callee_relay = static_cast<uint16_t>(answered.session().callee().relay(0).rtp().port());
    return placed;
  }

  std::unique_ptr<testing::LocalControl> control_;
  std::unique_ptr<v1::NatControlService::Stub> stub_;
  std::unique_ptr<testing::LocalRelay> relay_;
};

// An offer in STRICT naming a cluster-internal service (a DNS server, say): the relay sends it
// nothing and forwards nothing from it.
TEST_F(RelayLoopTest, StrictOfferNamingAPrivateServiceIsNoProxy) {
  Start("");
  UdpPeer callee;
  const Placed call = Place("strict-proxy@pbx", testing::AudioSdp("10.96.0.10", 53), testing::AudioSdp("127.0.0.1", callee.port()),
                            v1::LATCHING_MODE_STRICT);
  SendStream(callee, call.callee_relay, 0x2222, 20);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::MetricValue(relay_->Metrics(), "latchkey_relay_drops_total{reason=\"no_destination\"}") >= 20; },
      absl::Seconds(2)));
  EXPECT_EQ(testing::MetricValue(relay_->Metrics(), "latchkey_relay_packets_total{direction=\"out\",path=\"socket\"}"), 0);
}

// Two calls whose SDPs name each other's relay ports (the relay's own range) in STRICT and in the
// most trusting learning mode: no packet is ever sent to the relay's own ports, so nothing loops.
TEST_F(RelayLoopTest, LegsNamingTheRelaysOwnPortsNeverLoop) {
  Start("");
  for (v1::LatchingMode mode : {v1::LATCHING_MODE_STRICT, v1::LATCHING_MODE_FIRST_PACKET}) {
    SCOPED_TRACE(v1::LatchingMode_Name(mode));
    UdpPeer callee_a, callee_b;
    const Placed a = Place(absl::StrCat("loop-a-", mode, "@pbx"), testing::AudioSdp("127.0.0.1", relay_->port_max() - 1),
                           testing::AudioSdp("127.0.0.1", callee_a.port()), mode);
    // B's caller names A's caller relay port; A's caller was told (above) to send to a port in the
    // relay's range as well.
    const Placed b = Place(absl::StrCat("loop-b-", mode, "@pbx"), testing::AudioSdp("127.0.0.1", a.caller_relay),
                           testing::AudioSdp("127.0.0.1", callee_b.port()), mode);
    const double out_before = testing::MetricValue(relay_->Metrics(), "latchkey_relay_packets_total{direction=\"out\",path=\"socket\"}");
    SendStream(callee_b, b.callee_relay, 0xB0B0, 20);
    SendStream(callee_a, a.callee_relay, 0xA0A0, 20);
    absl::SleepFor(absl::Milliseconds(200));
    const std::string metrics = relay_->Metrics();
    EXPECT_EQ(testing::MetricValue(metrics, "latchkey_relay_packets_total{direction=\"out\",path=\"socket\"}"), out_before);
    EXPECT_EQ(testing::MetricValue(metrics, "latchkey_relay_packets_total{direction=\"in\",path=\"socket\"}"), 40 * (mode == v1::LATCHING_MODE_STRICT ? 1 : 2));
  }
}

// A relay learns its peers' ranges with its registration, not its first heartbeat: heartbeats are
// 30 s apart here, and media from the other relay's port is refused at once.
TEST_F(RelayLoopTest, PeerRangesArriveWithTheRegistration) {
  Start("worker_heartbeat_interval { seconds: 30 }");
  auto second = testing::LocalRelay::Start(*control_, "relay-second");
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(testing::WaitForWorker(*stub_, "relay-second", absl::Seconds(30)));
  // No heartbeat for 30 s: the ranges came with the registration answer.
  EXPECT_TRUE(testing::WaitFor(
      [&] { return testing::MetricValue((*second)->Metrics(), "latchkey_relay_known_relays") == 2; }, absl::Seconds(2)));
  {
    v1::DrainWorkerRequest drain;  // the call goes to the second relay
    drain.set_worker_id("relay-loop");
    v1::DrainWorkerResponse drained;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->DrainWorker(&context, drain, &drained).ok());
  }
  UdpPeer callee;
  const Placed call = Place("peer-loop@pbx", testing::AudioSdp("192.168.1.20", 4000), testing::AudioSdp("127.0.0.1", callee.port()),
                            v1::LATCHING_MODE_FIRST_PACKET);
  // A socket on the first relay's range plays that relay forwarding a leg to the second.
  UdpPeer looped(false, static_cast<uint16_t>(relay_->port_min() + 2));
  ASSERT_NE(looped.port(), 0);
  SendStream(looped, call.caller_relay, 0x1007, 20);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::MetricValue((*second)->Metrics(), "latchkey_relay_drops_total{reason=\"loop\"}") == 20; },
      absl::Seconds(2)));
}

// A call between two PBXes that both use this fleet goes through two relays, each leg's SDP naming
// the other relay's port. Control marks such legs as a relay chain, so the relays accept each other
// there (and only there) and the phones hear each other.
TEST_F(RelayLoopTest, ChainedCallThroughTwoRelaysCarriesMedia) {
  Start("worker_heartbeat_interval { nanos: 200000000 }");
  UdpPeer phone1, phone2, placeholder;
  const Placed first = Place("chain-1@pbx1", testing::AudioSdp("127.0.0.1", phone1.port()),
                             testing::AudioSdp("127.0.0.1", placeholder.port()), v1::LATCHING_MODE_UNSPECIFIED);
  auto second = testing::LocalRelay::Start(*control_, "relay-second");
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(testing::WaitForWorker(*stub_, "relay-second", absl::Seconds(10)));
  {
    v1::DrainWorkerRequest drain;  // the second call lands on the second relay
    drain.set_worker_id("relay-loop");
    v1::DrainWorkerResponse drained;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->DrainWorker(&context, drain, &drained).ok());
  }
  const Placed chained = Place("chain-2@pbx2", testing::AudioSdp("127.0.0.1", first.callee_relay),
                               testing::AudioSdp("127.0.0.1", phone2.port()), v1::LATCHING_MODE_UNSPECIFIED);
  {
    v1::UpdateSessionRequest update;  // the first PBX learns where the second relay wants its media
    update.set_session_id(first.id);
    update.set_side(v1::SIDE_CALLEE);
    update.set_sdp(testing::AudioSdp("127.0.0.1", chained.caller_relay));
    *update.mutable_signaling_source() = testing::Address("127.0.0.1", 5062);
    v1::UpdateSessionResponse updated;
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->UpdateSession(&context, update, &updated).ok());
    EXPECT_TRUE(updated.session().callee().relay_chain());
  }
  ASSERT_TRUE(testing::WaitFor(
      [&] { return testing::MetricValue(relay_->Metrics(), "latchkey_relay_known_relays") == 2; }, absl::Seconds(2)));
  std::thread back([&] { SendStream(phone2, chained.callee_relay, 0x2222, 40); });
  SendStream(phone1, first.caller_relay, 0x1111, 40);
  back.join();
  EXPECT_GE(phone2.Drain(absl::Milliseconds(200)).size(), 30u);
  EXPECT_GE(phone1.Drain(absl::Milliseconds(200)).size(), 30u);
  EXPECT_EQ(testing::MetricValue(relay_->Metrics(), "latchkey_relay_drops_total{reason=\"loop\"}"), 0);
  EXPECT_EQ(testing::MetricValue((*second)->Metrics(), "latchkey_relay_drops_total{reason=\"loop\"}"), 0);
}

}  // namespace
}  // namespace latchkey
