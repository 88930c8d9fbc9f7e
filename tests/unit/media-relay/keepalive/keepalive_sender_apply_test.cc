// KeepaliveSender::Apply against the target policy. OWN_SOCKET mode on 127.0.0.1 port 0 needs no
// privileges (REGISTRAR_SOURCE would need CAP_NET_RAW); the sender thread is never started, so no
// keepalive is sent.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/net/socket_address.h"
#include "common/time/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "media-relay/keepalive/keepalive_sender.h"
#include "prometheus/registry.h"

namespace latchkey::relay {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::StartsWith;

class DiscardEvents : public KeepaliveEventSink {
 public:
  void OnKeepaliveEvents(std::vector<KeepaliveEventOut>) override {}
};

v1::KeepaliveTarget Target(const std::string& id, const std::string& destination_ip = "203.0.113.7",
                           absl::Duration interval = absl::Seconds(30)) {
  v1::KeepaliveTarget target;
  target.set_binding_id(id);
  target.set_contact_uri(absl::StrCat("sip:", id, "@192.168.1.20:5060"));
  target.mutable_destination()->set_ip(destination_ip);
  target.mutable_destination()->set_port(41234);
  target.mutable_registrar()->set_ip("192.0.2.50");  // not ours: OWN_SOCKET mode does not care
  target.mutable_registrar()->set_port(5060);
  target.set_method(v1::KEEPALIVE_METHOD_OPTIONS);
  *target.mutable_interval() = ToProto(interval);
  target.set_failure_threshold(3);
  return target;
}

class KeepaliveSenderApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KeepaliveSenderOptions options;
    options.mode = v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET;
    options.own_socket = net::SocketAddress{net::IpAddress::V4(127, 0, 0, 1), 0};  // any port
    options.policy.min_interval = absl::Seconds(5);
    options.policy.max_targets = 4;
    auto sender = KeepaliveSender::Create(options, registry_, &sink_);
    ASSERT_TRUE(sender.ok()) << sender.status();
    sender_ = *std::move(sender);
  }

  v1::SetKeepalivesResponse Apply(std::vector<v1::KeepaliveTarget> upserts, std::vector<std::string> removals = {},
                                   uint64_t fencing_token = 0, bool replace_all = false) {
    v1::SetKeepalivesRequest request;
    request.set_complete(true);
    request.set_replace_all(replace_all);
    request.set_fencing_token(fencing_token);
    for (auto& target : upserts) *request.add_upsert() = std::move(target);
    for (auto& id : removals) request.add_remove(std::move(id));
    v1::SetKeepalivesResponse response;
    last_status_ = sender_->Apply(request, &response);
    return response;
  }
  absl::Status last_status_;

  // The value of a counter in what the registry exports; -1 if it is not there at all.
  double CounterValue(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    for (const prometheus::MetricFamily& family : registry_.Collect()) {
      if (family.name != name) continue;
      for (const prometheus::ClientMetric& metric : family.metric) {
        std::map<std::string, std::string> have;
        for (const auto& label : metric.label) have[label.name] = label.value;
        if (have == labels) return metric.counter.value;
      }
    }
    return -1;
  }
  double Refused(const std::string& reason) {
    return CounterValue("latchkey_keepalive_targets_refused_total", {{"reason", reason}});
  }

  prometheus::Registry registry_;
  DiscardEvents sink_;
  std::unique_ptr<KeepaliveSender> sender_;
};

TEST_F(KeepaliveSenderApplyTest, OwnSocketSenderBindsWithoutPrivileges) {
  EXPECT_EQ(sender_->mode(), v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET);
  EXPECT_EQ(sender_->own_address().ip.ToString(), "127.0.0.1");
  EXPECT_NE(sender_->own_address().port, 0);
  EXPECT_EQ(sender_->size(), 0u);
}

TEST_F(KeepaliveSenderApplyTest, HoldsAcceptedTargetsAndListsRefusedOnes) {
  const v1::SetKeepalivesResponse response = Apply({
      Target("b-public"),
      Target("b-private", "10.0.0.1"),
      Target("b-multicast", "224.0.0.1"),
      Target("b-loopback", "127.0.0.1"),
  });
  EXPECT_EQ(response.targets(), 1u);
  EXPECT_EQ(sender_->size(), 1u);
  // "binding_id: field: why", one per refused target.
  EXPECT_THAT(response.refused(), SizeIs(3));
  EXPECT_THAT(response.refused(),
              Contains(AllOf(StartsWith("b-private: destination: "), HasSubstr("keepalive_allow_private"))));
  EXPECT_THAT(response.refused(), Contains(StartsWith("b-multicast: destination: ")));
  EXPECT_THAT(response.refused(),
              Contains(AllOf(StartsWith("b-loopback: destination: "), HasSubstr("keepalive_allow_loopback"))));

  EXPECT_EQ(Refused("private_destination"), 1);
  EXPECT_EQ(Refused("special_destination"), 1);
  EXPECT_EQ(Refused("loopback_destination"), 1);
}

TEST_F(KeepaliveSenderApplyTest, RefusedTargetsAreNotHeldSoRemovingThemChangesNothing) {
  Apply({Target("b-private", "10.0.0.1")});
  EXPECT_EQ(sender_->size(), 0u);
  // Sending it again is refused again (and counted again): it never made it into the table.
  const v1::SetKeepalivesResponse again = Apply({Target("b-private", "10.0.0.1")});
  EXPECT_THAT(again.refused(), SizeIs(1));
  EXPECT_EQ(Refused("private_destination"), 2);
}

TEST_F(KeepaliveSenderApplyTest, AHeldTargetChangedToARefusedDestinationIsDropped) {
  ASSERT_THAT(Apply({Target("b1")}).refused(), IsEmpty());
  ASSERT_EQ(sender_->size(), 1u);
  const v1::SetKeepalivesResponse response = Apply({Target("b1", "192.168.1.1")});
  EXPECT_THAT(response.refused(), ElementsAre(StartsWith("b1: destination: ")));
  EXPECT_EQ(sender_->size(), 0u);
  EXPECT_EQ(response.targets(), 0u);
}

TEST_F(KeepaliveSenderApplyTest, RaisesShortIntervalsInsteadOfRefusing) {
  // 500 ms is below the table's own 1 s minimum: only a raised interval can be held at all.
  const v1::SetKeepalivesResponse response =
      Apply({Target("b-fast", "203.0.113.7", absl::Milliseconds(500)), Target("b-slow")});
  EXPECT_THAT(response.refused(), IsEmpty());
  EXPECT_EQ(sender_->size(), 2u);
  EXPECT_EQ(CounterValue("latchkey_keepalive_intervals_raised_total"), 1);
}

TEST_F(KeepaliveSenderApplyTest, TargetsTheTableRejectsAreCountedAsInvalid) {
  v1::KeepaliveTarget broken = Target("b-broken");
  broken.set_failure_threshold(0);
  const v1::SetKeepalivesResponse response = Apply({broken});
  ASSERT_THAT(response.refused(), SizeIs(1));
  EXPECT_THAT(response.refused(0), StartsWith("b-broken: failure_threshold: "));
  EXPECT_EQ(sender_->size(), 0u);
  EXPECT_EQ(Refused("invalid"), 1);
}

TEST_F(KeepaliveSenderApplyTest, NewTargetsPastMaxTargetsAreRefusedChangesToHeldOnesAreNot) {
  // max_targets is 4.
  ASSERT_THAT(Apply({Target("b1"), Target("b2"), Target("b3"), Target("b4")}).refused(), IsEmpty());
  v1::SetKeepalivesResponse response = Apply({Target("b5"), Target("b2", "198.51.100.9")});
  ASSERT_THAT(response.refused(), SizeIs(1));
  EXPECT_THAT(response.refused(0), StartsWith("b5: max_keepalive_targets: "));
  EXPECT_EQ(sender_->size(), 4u);
  EXPECT_EQ(Refused("too_many"), 1);

  // Removing one makes room again.
  EXPECT_EQ(Apply({}, {"b1"}).targets(), 3u);
  response = Apply({Target("b5")});
  EXPECT_THAT(response.refused(), IsEmpty());
  EXPECT_EQ(sender_->size(), 4u);
}

// Two control replicas that both believe they lead: the worker follows the newer lease only.
TEST_F(KeepaliveSenderApplyTest, AnOlderFencingTokenIsRefusedWholeAndCounted) {
  Apply({Target("b0")}, {}, /*fencing_token=*/0);  // before any leader: unfenced is taken
  ASSERT_TRUE(last_status_.ok()) << last_status_;
  Apply({Target("b1"), Target("b2")}, {}, /*fencing_token=*/5, /*replace_all=*/true);
  ASSERT_TRUE(last_status_.ok()) << last_status_;
  EXPECT_EQ(sender_->size(), 2u);
  // The former leader's complete set would drop b2 and add b3: refused, nothing changes.
  Apply({Target("b1"), Target("b3")}, {}, /*fencing_token=*/4, /*replace_all=*/true);
  EXPECT_TRUE(absl::IsFailedPrecondition(last_status_)) << last_status_;
  EXPECT_THAT(std::string(last_status_.message()), HasSubstr("fencing_token: 4 is older than 5"));
  EXPECT_EQ(sender_->size(), 2u);
  EXPECT_EQ(CounterValue("latchkey_keepalive_assignments_fenced_total"), 1.0);
  // The same or a newer token is taken; 0 (a control without a lease) no longer is.
  Apply({}, {"b1"}, /*fencing_token=*/5);
  EXPECT_TRUE(last_status_.ok()) << last_status_;
  Apply({Target("b4")}, {}, /*fencing_token=*/9, /*replace_all=*/true);
  EXPECT_TRUE(last_status_.ok()) << last_status_;
  EXPECT_EQ(sender_->size(), 1u);
  Apply({Target("b5")}, {}, /*fencing_token=*/0);
  EXPECT_TRUE(absl::IsFailedPrecondition(last_status_)) << last_status_;
  EXPECT_EQ(sender_->size(), 1u);
}

}  // namespace
}  // namespace latchkey::relay
