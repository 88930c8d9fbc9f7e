#include "media-relay/keepalive/target_policy.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/net/ip_address.h"
#include "common/time/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::relay {
namespace {

using ::testing::HasSubstr;

constexpr absl::string_view kOwnRegistrar = "198.51.100.1";

net::IpAddress Ip(absl::string_view text) {
  auto ip = net::IpAddress::Parse(text);
  EXPECT_TRUE(ip.ok()) << ip.status();
  return ip.ok() ? *ip : net::IpAddress();
}

v1::SocketAddress Address(absl::string_view ip, uint32_t port) {
  v1::SocketAddress address;
  address.set_ip(std::string(ip));
  address.set_port(port);
  return address;
}

v1::KeepaliveTarget Target(absl::string_view destination_ip = "203.0.113.7", uint32_t destination_port = 41234,
                           absl::string_view registrar_ip = kOwnRegistrar,
                           absl::Duration interval = absl::Seconds(30)) {
  v1::KeepaliveTarget target;
  target.set_binding_id("b1");
  target.set_contact_uri("sip:alice@192.168.1.20:5060");
  *target.mutable_destination() = Address(destination_ip, destination_port);
  *target.mutable_registrar() = Address(registrar_ip, 5060);
  target.set_method(v1::KEEPALIVE_METHOD_OPTIONS);
  *target.mutable_interval() = ToProto(interval);
  target.set_failure_threshold(3);
  return target;
}

KeepaliveTargetPolicy RegistrarSourcePolicy() {
  KeepaliveTargetPolicy policy;
  policy.mode = v1::KEEPALIVE_SOURCE_MODE_REGISTRAR_SOURCE;
  policy.sources = {Ip(kOwnRegistrar), Ip("2001:db8::1")};
  policy.min_interval = absl::Seconds(5);
  policy.max_targets = 100;
  return policy;
}

KeepaliveTargetPolicy OwnSocketPolicy() {
  KeepaliveTargetPolicy policy = RegistrarSourcePolicy();
  policy.mode = v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET;
  policy.sources.clear();
  return policy;
}

TargetVerdict Check(const KeepaliveTargetPolicy& policy, v1::KeepaliveTarget target, size_t held = 0,
                    bool is_new = true) {
  return CheckKeepaliveTarget(policy, &target, held, is_new);
}

TargetVerdict CheckDestination(const KeepaliveTargetPolicy& policy, absl::string_view ip, uint32_t port = 41234) {
  return Check(policy, Target(ip, port));
}

TEST(TargetPolicyTest, AcceptsAPublicDestinationFromAnOwnRegistrar) {
  const TargetVerdict verdict = Check(RegistrarSourcePolicy(), Target());
  EXPECT_TRUE(verdict.ok()) << verdict.status;
  EXPECT_TRUE(verdict.status.ok());
  EXPECT_EQ(verdict.refusal, TargetRefusal::kNone);
  EXPECT_FALSE(verdict.interval_raised);
}

TEST(TargetPolicyTest, RefusesAForeignRegistrarInRegistrarSourceMode) {
  // Sending with someone else's source address is exactly the spoofing the policy exists to stop.
  const TargetVerdict verdict = Check(RegistrarSourcePolicy(), Target("203.0.113.7", 41234, "192.0.2.50"));
  EXPECT_EQ(verdict.refusal, TargetRefusal::kForeignSource);
  EXPECT_EQ(verdict.status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(verdict.status.message(), HasSubstr("registrar"));
  EXPECT_THAT(verdict.status.message(), HasSubstr("192.0.2.50"));
  EXPECT_THAT(verdict.status.message(), HasSubstr("keepalive_source_ips"));
  EXPECT_EQ(TargetRefusalLabel(verdict.refusal), "foreign_source");
}

TEST(TargetPolicyTest, RefusesAMissingRegistrarInRegistrarSourceMode) {
  v1::KeepaliveTarget target = Target();
  target.clear_registrar();
  const TargetVerdict verdict = Check(RegistrarSourcePolicy(), target);
  EXPECT_EQ(verdict.refusal, TargetRefusal::kForeignSource);
  EXPECT_THAT(verdict.status.message(), HasSubstr("registrar"));
}

TEST(TargetPolicyTest, RefusesEveryRegistrarWhenNoSourcesAreConfigured) {
  KeepaliveTargetPolicy policy = RegistrarSourcePolicy();
  policy.sources.clear();
  EXPECT_EQ(Check(policy, Target()).refusal, TargetRefusal::kForeignSource);
}

TEST(TargetPolicyTest, AcceptsAV4MappedRegistrarEqualToAnOwnIpv4) {
  EXPECT_TRUE(Check(RegistrarSourcePolicy(), Target("203.0.113.7", 41234, "::ffff:198.51.100.1")).ok());
  // And the other way round: a source configured v4-mapped matches a plain IPv4 registrar.
  KeepaliveTargetPolicy policy = RegistrarSourcePolicy();
  policy.sources = {Ip("::ffff:198.51.100.1")};
  EXPECT_TRUE(Check(policy, Target()).ok());
}

TEST(TargetPolicyTest, AcceptsAnOwnIpv6Registrar) {
  EXPECT_TRUE(Check(RegistrarSourcePolicy(), Target("2606:4700::1111", 5060, "2001:db8::1")).ok());
  EXPECT_EQ(Check(RegistrarSourcePolicy(), Target("2606:4700::1111", 5060, "2001:db8::2")).refusal,
            TargetRefusal::kForeignSource);
}

TEST(TargetPolicyTest, OwnSocketModeIgnoresTheRegistrar) {
  // The packets leave the worker's own socket: the registrar field is not a source address then.
  EXPECT_TRUE(Check(OwnSocketPolicy(), Target("203.0.113.7", 41234, "192.0.2.50")).ok());
  v1::KeepaliveTarget target = Target();
  target.clear_registrar();
  EXPECT_TRUE(Check(OwnSocketPolicy(), target).ok());
}

TEST(TargetPolicyTest, NeverSendsToSpecialDestinationsWhateverTheFlags) {
  for (bool permissive : {false, true}) {
    KeepaliveTargetPolicy policy = RegistrarSourcePolicy();
    policy.allow_private = permissive;
    policy.allow_loopback = permissive;
    for (const char* ip : {"0.0.0.0", "0.1.2.3", "0.255.255.255", "224.0.0.1", "239.255.255.250", "239.1.2.3",
                           "255.255.255.255", "240.0.0.1", "250.1.2.3", "ff02::1", "ff05::1:3", "ff0e::101",
                           "::", "::ffff:0.0.0.0", "::ffff:224.0.0.1", "::ffff:255.255.255.255"}) {
      const TargetVerdict verdict = CheckDestination(policy, ip);
      EXPECT_EQ(verdict.refusal, TargetRefusal::kSpecialDestination) << ip << " permissive=" << permissive;
      EXPECT_EQ(verdict.status.code(), absl::StatusCode::kPermissionDenied) << ip;
      EXPECT_THAT(verdict.status.message(), HasSubstr("destination")) << ip;
      EXPECT_EQ(TargetRefusalLabel(verdict.refusal), "special_destination");
    }
  }
}

TEST(TargetPolicyTest, RefusesPortZero) {
  KeepaliveTargetPolicy policy = RegistrarSourcePolicy();
  policy.allow_private = policy.allow_loopback = true;
  const TargetVerdict verdict = CheckDestination(policy, "203.0.113.7", 0);
  EXPECT_EQ(verdict.refusal, TargetRefusal::kSpecialDestination);
  EXPECT_FALSE(verdict.status.ok());
  EXPECT_THAT(verdict.status.message(), HasSubstr("destination"));
}

TEST(TargetPolicyTest, RefusesUnparseableDestinations) {
  for (const char* ip : {"", "example.com", "300.1.1.1", "fe80::1%eth0"}) {
    const TargetVerdict verdict = CheckDestination(RegistrarSourcePolicy(), ip);
    EXPECT_FALSE(verdict.ok()) << ip;
    EXPECT_THAT(verdict.status.message(), HasSubstr("destination")) << ip;
  }
  EXPECT_FALSE(CheckDestination(RegistrarSourcePolicy(), "203.0.113.7", 65536).ok());
}

TEST(TargetPolicyTest, LoopbackOnlyWithAllowLoopback) {
  for (const char* ip : {"127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"}) {
    KeepaliveTargetPolicy policy = RegistrarSourcePolicy();
    policy.allow_private = true;  // loopback is its own switch, not part of "private"
    TargetVerdict verdict = CheckDestination(policy, ip);
    EXPECT_EQ(verdict.refusal, TargetRefusal::kLoopback) << ip;
    EXPECT_EQ(verdict.status.code(), absl::StatusCode::kPermissionDenied) << ip;
    EXPECT_THAT(verdict.status.message(), HasSubstr("keepalive_allow_loopback")) << ip;
    EXPECT_EQ(TargetRefusalLabel(verdict.refusal), "loopback_destination");

    policy.allow_private = false;
    policy.allow_loopback = true;
    verdict = CheckDestination(policy, ip);
    EXPECT_TRUE(verdict.ok()) << ip << ": " << verdict.status;
  }
}

TEST(TargetPolicyTest, PrivateSharedAndLinkLocalOnlyWithAllowPrivate) {
  for (const char* ip : {"10.0.0.1", "10.255.255.254", "172.16.0.1", "172.31.255.254", "192.168.0.1", "192.168.255.254",
                         "100.64.0.1", "100.127.255.254", "169.254.0.1", "169.254.255.254", "fc00::1", "fd12:3456::1",
                         "fe80::1", "febf::1", "::ffff:10.0.0.1", "::ffff:192.168.1.1"}) {
    KeepaliveTargetPolicy policy = RegistrarSourcePolicy();
    policy.allow_loopback = true;  // private is its own switch, not part of "loopback"
    TargetVerdict verdict = CheckDestination(policy, ip);
    EXPECT_EQ(verdict.refusal, TargetRefusal::kPrivate) << ip;
    EXPECT_EQ(verdict.status.code(), absl::StatusCode::kPermissionDenied) << ip;
    EXPECT_THAT(verdict.status.message(), HasSubstr("keepalive_allow_private")) << ip;
    EXPECT_EQ(TargetRefusalLabel(verdict.refusal), "private_destination");

    policy.allow_loopback = false;
    policy.allow_private = true;
    verdict = CheckDestination(policy, ip);
    EXPECT_TRUE(verdict.ok()) << ip << ": " << verdict.status;
  }
}

TEST(TargetPolicyTest, AcceptsPublicDestinationsJustOutsideTheSpecialRanges) {
  // The edges of each range: the neighbours are ordinary public addresses.
  for (const char* ip :
       {"1.1.1.1", "9.255.255.255", "11.0.0.1", "172.15.255.254", "172.32.0.1", "192.167.255.254", "192.169.0.1",
        "100.63.255.254", "100.128.0.1", "169.253.255.254", "126.255.255.254", "128.0.0.1", "223.255.255.254",
        "2606:4700::1111", "2001:4860:4860::8888", "fbff::1", "::ffff:8.8.8.8"}) {
    const TargetVerdict verdict = CheckDestination(RegistrarSourcePolicy(), ip);
    EXPECT_TRUE(verdict.ok()) << ip << ": " << verdict.status;
  }
}

TEST(TargetPolicyTest, RaisesAnIntervalBelowTheFloorAndSaysSo) {
  v1::KeepaliveTarget target = Target("203.0.113.7", 41234, kOwnRegistrar, absl::Seconds(1));
  const TargetVerdict verdict = CheckKeepaliveTarget(RegistrarSourcePolicy(), &target, 0, true);
  EXPECT_TRUE(verdict.ok()) << verdict.status;  // raised, not refused
  EXPECT_TRUE(verdict.interval_raised);
  EXPECT_EQ(FromProto(target.interval()), absl::Seconds(5));
}

TEST(TargetPolicyTest, RaisesAMissingInterval) {
  v1::KeepaliveTarget target = Target();
  target.clear_interval();
  const TargetVerdict verdict = CheckKeepaliveTarget(RegistrarSourcePolicy(), &target, 0, true);
  EXPECT_TRUE(verdict.interval_raised);
  EXPECT_EQ(FromProto(target.interval()), absl::Seconds(5));
}

TEST(TargetPolicyTest, LeavesAnIntervalAtOrAboveTheFloorAlone) {
  for (absl::Duration interval : {absl::Seconds(5), absl::Seconds(5) + absl::Milliseconds(1), absl::Seconds(90)}) {
    v1::KeepaliveTarget target = Target("203.0.113.7", 41234, kOwnRegistrar, interval);
    const TargetVerdict verdict = CheckKeepaliveTarget(RegistrarSourcePolicy(), &target, 0, true);
    EXPECT_TRUE(verdict.ok()) << verdict.status;
    EXPECT_FALSE(verdict.interval_raised) << interval;
    EXPECT_EQ(FromProto(target.interval()), interval);
  }
}

TEST(TargetPolicyTest, ARefusedTargetIsNotFlaggedAsRaised) {
  v1::KeepaliveTarget target = Target("10.0.0.1", 41234, kOwnRegistrar, absl::Seconds(1));
  const TargetVerdict verdict = CheckKeepaliveTarget(RegistrarSourcePolicy(), &target, 0, true);
  EXPECT_EQ(verdict.refusal, TargetRefusal::kPrivate);
  EXPECT_FALSE(verdict.interval_raised);
}

TEST(TargetPolicyTest, ANewTargetAtTheCapIsRefusedAnExistingOneIsNot) {
  KeepaliveTargetPolicy policy = RegistrarSourcePolicy();
  policy.max_targets = 3;
  EXPECT_TRUE(Check(policy, Target(), /*held=*/2, /*is_new=*/true).ok());

  const TargetVerdict refused = Check(policy, Target(), /*held=*/3, /*is_new=*/true);
  EXPECT_EQ(refused.refusal, TargetRefusal::kTooMany);
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status.message(), HasSubstr("max_keepalive_targets"));
  EXPECT_EQ(TargetRefusalLabel(refused.refusal), "too_many");

  // A change to a held target does not add one.
  EXPECT_TRUE(Check(policy, Target(), /*held=*/3, /*is_new=*/false).ok());
  // Still checked against the other rules, though.
  EXPECT_EQ(Check(policy, Target("10.0.0.1"), /*held=*/3, /*is_new=*/false).refusal, TargetRefusal::kPrivate);
}

TEST(TargetPolicyTest, RefusalLabels) {
  EXPECT_EQ(TargetRefusalLabel(TargetRefusal::kNone), "none");
  EXPECT_EQ(TargetRefusalLabel(TargetRefusal::kForeignSource), "foreign_source");
  EXPECT_EQ(TargetRefusalLabel(TargetRefusal::kSpecialDestination), "special_destination");
  EXPECT_EQ(TargetRefusalLabel(TargetRefusal::kLoopback), "loopback_destination");
  EXPECT_EQ(TargetRefusalLabel(TargetRefusal::kPrivate), "private_destination");
  EXPECT_EQ(TargetRefusalLabel(TargetRefusal::kTooMany), "too_many");
}

}  // namespace
}  // namespace latchkey::relay
