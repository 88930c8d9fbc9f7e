#include "services/control/nat/nat_detector.h"

#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace latchkey::control {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::StartsWith;

google::protobuf::RepeatedPtrField<v1::NatPolicy> Policies(const std::string& text_proto) {
  v1::ControlConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text_proto, &config)) << text_proto;
  return config.nat_policies();
}

NatDetector Detector(const std::string& text_proto = "") {
  absl::StatusOr<NatDetector> detector = NatDetector::Create(Policies(text_proto));
  EXPECT_TRUE(detector.ok()) << detector.status();
  return *std::move(detector);
}

// The message of Create's error ("" if it succeeded).
std::string CreateError(const std::string& text_proto) {
  return std::string(NatDetector::Create(Policies(text_proto)).status().message());
}

net::SocketAddress Addr(const std::string& text) { return net::SocketAddress::Parse(text).value(); }
net::IpAddress Ip(const std::string& text) { return net::IpAddress::Parse(text).value(); }
sip::SipUri Uri(const std::string& text) { return sip::SipUri::Parse(text).value(); }
sip::Via ViaOf(const std::string& text) { return sip::Via::Parse(text).value(); }

std::vector<v1::NatReason> ToReasons(const google::protobuf::RepeatedField<int>& values) {
  std::vector<v1::NatReason> reasons;
  for (int value : values) reasons.push_back(static_cast<v1::NatReason>(value));
  return reasons;
}

std::vector<v1::NatReason> Reasons(const v1::NatVerdict& verdict) { return ToReasons(verdict.reasons()); }

TEST(NatDetectorTest, EmptyConfigMakesOneDefaultPolicyWithDefaults) {
  NatDetector detector = Detector();
  ASSERT_EQ(detector.policy_count(), 1);
  const v1::NatPolicy& policy = detector.policy(0);
  EXPECT_EQ(policy.name(), "default");
  EXPECT_EQ(policy.nat_registration_expiry().seconds(), 60);
  EXPECT_EQ(policy.keepalive_interval().seconds(), 30);
  EXPECT_EQ(policy.keepalive_method(), v1::KEEPALIVE_METHOD_OPTIONS);
  EXPECT_EQ(policy.keepalive_failure_threshold(), 3u);
  EXPECT_THAT(ToReasons(policy.rules()), ElementsAre(v1::NAT_REASON_CONTACT_PRIVATE, v1::NAT_REASON_CONTACT_ADDRESS_MISMATCH,
                                 v1::NAT_REASON_CONTACT_PORT_MISMATCH, v1::NAT_REASON_VIA_PRIVATE,
                                 v1::NAT_REASON_VIA_ADDRESS_MISMATCH, v1::NAT_REASON_VIA_PORT_MISMATCH,
                                 v1::NAT_REASON_SDP_PRIVATE, v1::NAT_REASON_SDP_ADDRESS_MISMATCH));
  EXPECT_EQ(&detector.PolicyFor(Ip("8.8.8.8")), &policy);
}

TEST(NatDetectorTest, ExplicitValuesAreKept) {
  NatDetector detector = Detector(R"pb(
    nat_policies {
      name: "custom"
      rules: [ NAT_REASON_SOURCE_PRIVATE ]
      nat_registration_expiry {}
      keepalive_interval { seconds: 15 }
      keepalive_method: KEEPALIVE_METHOD_CRLF
      keepalive_failure_threshold: 5
      keepalive_non_nat: true
    }
  )pb");
  const v1::NatPolicy& policy = detector.PolicyFor(Ip("10.0.0.1"));
  EXPECT_EQ(policy.name(), "custom");
  EXPECT_TRUE(policy.has_nat_registration_expiry());
  EXPECT_EQ(policy.nat_registration_expiry().seconds(), 0);  // 0 = keep the requested expiry
  EXPECT_EQ(policy.keepalive_interval().seconds(), 15);
  EXPECT_EQ(policy.keepalive_method(), v1::KEEPALIVE_METHOD_CRLF);
  EXPECT_EQ(policy.keepalive_failure_threshold(), 5u);
  EXPECT_TRUE(policy.keepalive_non_nat());
  ASSERT_EQ(policy.rules_size(), 1);
  EXPECT_EQ(detector.policy_count(), 1);  // "custom" matches all sources: no catch-all added
}

TEST(NatDetectorTest, PublicEndpointWithMatchingAddressesIsNotBehindNat) {
  NatDetector detector = Detector();
  sip::SipUri contact = Uri("sip:alice@203.0.113.7:5060;transport=udp");
  sip::Via via = ViaOf("SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK1;rport");
  NatInput input{Addr("203.0.113.7:5060"), &contact, &via, {Ip("203.0.113.7")}};
  v1::NatVerdict verdict = detector.Evaluate(input);
  EXPECT_EQ(verdict.state(), v1::NAT_STATE_NOT_BEHIND_NAT);
  EXPECT_THAT(Reasons(verdict), IsEmpty());
  EXPECT_EQ(verdict.policy(), "default");
  EXPECT_FALSE(verdict.trusted_peer());
}

TEST(NatDetectorTest, PhoneBehindHomeRouterFiresEveryContactAndViaRule) {
  NatDetector detector = Detector();
  sip::SipUri contact = Uri("sip:1001@192.168.1.101:5062");
  sip::Via via = ViaOf("SIP/2.0/UDP 192.168.1.101:5062;branch=z9hG4bK1783659127");
  NatInput input{Addr("203.0.113.7:41234"), &contact, &via, {Ip("192.168.1.101")}};
  v1::NatVerdict verdict = detector.Evaluate(input);
  EXPECT_EQ(verdict.state(), v1::NAT_STATE_BEHIND_NAT);
  EXPECT_THAT(Reasons(verdict),
              ElementsAre(v1::NAT_REASON_CONTACT_PRIVATE, v1::NAT_REASON_CONTACT_ADDRESS_MISMATCH,
                          v1::NAT_REASON_CONTACT_PORT_MISMATCH, v1::NAT_REASON_VIA_PRIVATE,
                          v1::NAT_REASON_VIA_ADDRESS_MISMATCH, v1::NAT_REASON_VIA_PORT_MISMATCH,
                          v1::NAT_REASON_SDP_PRIVATE, v1::NAT_REASON_SDP_ADDRESS_MISMATCH));
}

TEST(NatDetectorTest, SipAlgRewritingOnlyTheHostIsCaughtByThePort) {
  // The router's ALG put its public IP into the Contact but left the phone's 5060; the NAT mapping
  // is really port 41234.
  NatDetector detector = Detector();
  sip::SipUri contact = Uri("sip:1001@203.0.113.7:5060;transport=udp");
  NatInput input{Addr("203.0.113.7:41234"), &contact, nullptr, {}};
  v1::NatVerdict verdict = detector.Evaluate(input);
  EXPECT_EQ(verdict.state(), v1::NAT_STATE_BEHIND_NAT);
  EXPECT_THAT(Reasons(verdict), ElementsAre(v1::NAT_REASON_CONTACT_PORT_MISMATCH));
}

TEST(NatDetectorTest, TrustedPeerIsExemptFromEveryRule) {
  NatDetector detector = Detector(R"pb(
    nat_policies { name: "carriers" trusted_cidrs: [ "198.51.100.0/24", "2001:db8:ca::/48" ] }
  )pb");
  sip::SipUri contact = Uri("sip:gw@10.1.1.1:5080");
  sip::Via via = ViaOf("SIP/2.0/UDP 10.1.1.1:5080;branch=z9hG4bKx");
  NatInput input{Addr("198.51.100.20:5060"), &contact, &via, {Ip("10.1.1.1")}};
  v1::NatVerdict verdict = detector.Evaluate(input);
  EXPECT_EQ(verdict.state(), v1::NAT_STATE_NOT_BEHIND_NAT);
  EXPECT_TRUE(verdict.trusted_peer());
  EXPECT_THAT(Reasons(verdict), IsEmpty());
  EXPECT_EQ(verdict.policy(), "carriers");

  input.source = Addr("[2001:db8:ca::1]:5060");
  EXPECT_TRUE(detector.Evaluate(input).trusted_peer());
  // Outside the trusted ranges the same request is behind NAT.
  input.source = Addr("198.51.101.20:5060");
  v1::NatVerdict untrusted = detector.Evaluate(input);
  EXPECT_FALSE(untrusted.trusted_peer());
  EXPECT_EQ(untrusted.state(), v1::NAT_STATE_BEHIND_NAT);
}

TEST(NatDetectorTest, ForceNatAclFiresFirstEvenWhenEverythingElseMatches) {
  NatDetector detector = Detector(R"pb(
    nat_policies { name: "acl" force_nat_cidrs: "198.51.100.0/24" }
  )pb");
  sip::SipUri contact = Uri("sip:alice@198.51.100.50:5060");
  NatInput input{Addr("198.51.100.50:5060"), &contact, nullptr, {}};
  v1::NatVerdict verdict = detector.Evaluate(input);
  EXPECT_EQ(verdict.state(), v1::NAT_STATE_BEHIND_NAT);
  EXPECT_THAT(Reasons(verdict), ElementsAre(v1::NAT_REASON_FORCED_BY_ACL));

  // Listed before the rules that fire too.
  input.source = Addr("198.51.100.50:40000");
  EXPECT_THAT(Reasons(detector.Evaluate(input)),
              ElementsAre(v1::NAT_REASON_FORCED_BY_ACL, v1::NAT_REASON_CONTACT_PORT_MISMATCH));

  // A Contact host outside the ACL, or a host name, does not fire it.
  sip::SipUri outside = Uri("sip:alice@203.0.113.7:5060");
  EXPECT_THAT(Reasons(detector.Evaluate({Addr("203.0.113.7:5060"), &outside, nullptr, {}})), IsEmpty());
  sip::SipUri name = Uri("sip:alice@phone.example.com");
  EXPECT_THAT(Reasons(detector.Evaluate({Addr("198.51.100.50:5060"), &name, nullptr, {}})),
              ElementsAre(v1::NAT_REASON_CONTACT_ADDRESS_MISMATCH));
}

TEST(NatDetectorTest, ForceNatAclAppliesEvenWithAnExplicitRuleList) {
  NatDetector detector = Detector(R"pb(
    nat_policies { name: "acl" rules: [ NAT_REASON_VIA_PRIVATE ] force_nat_cidrs: "192.0.2.0/24" }
  )pb");
  sip::SipUri contact = Uri("sip:alice@192.0.2.9");
  EXPECT_THAT(Reasons(detector.Evaluate({Addr("192.0.2.9:5060"), &contact, nullptr, {}})),
              ElementsAre(v1::NAT_REASON_FORCED_BY_ACL));
}

TEST(NatDetectorTest, PolicyWithOnlyViaRulesIgnoresContactAndSdp) {
  NatDetector detector = Detector(R"pb(
    nat_policies {
      name: "via-only"
      rules: [ NAT_REASON_VIA_PORT_MISMATCH, NAT_REASON_VIA_PRIVATE, NAT_REASON_VIA_ADDRESS_MISMATCH ]
    }
  )pb");
  sip::SipUri contact = Uri("sip:1001@192.168.1.101:5062");
  sip::Via via = ViaOf("SIP/2.0/UDP 203.0.113.7:5060;branch=z9hG4bK2");
  NatInput input{Addr("203.0.113.7:5060"), &contact, &via, {Ip("192.168.1.101")}};
  EXPECT_EQ(detector.Evaluate(input).state(), v1::NAT_STATE_NOT_BEHIND_NAT);

  sip::Via private_via = ViaOf("SIP/2.0/UDP 192.168.1.101:5062;branch=z9hG4bK3");
  input.via = &private_via;
  // Reported in NatReason order, not in the order the rules were listed.
  EXPECT_THAT(Reasons(detector.Evaluate(input)),
              ElementsAre(v1::NAT_REASON_VIA_PRIVATE, v1::NAT_REASON_VIA_ADDRESS_MISMATCH,
                          v1::NAT_REASON_VIA_PORT_MISMATCH));
}

TEST(NatDetectorTest, PolicyIsChosenBySourceCidrFirstMatchWins) {
  NatDetector detector = Detector(R"pb(
    nat_policies { name: "office" match_source_cidrs: "198.51.100.0/24" rules: [ NAT_REASON_SOURCE_PRIVATE ] }
    nat_policies { name: "v6-customers" match_source_cidrs: "2001:db8::/32" }
    nat_policies { name: "office-wide" match_source_cidrs: "198.51.0.0/16" }
  )pb");
  ASSERT_EQ(detector.policy_count(), 4);  // a catch-all is appended
  EXPECT_EQ(detector.policy(3).name(), "default");
  EXPECT_EQ(detector.PolicyFor(Ip("198.51.100.7")).name(), "office");
  EXPECT_EQ(detector.PolicyFor(Ip("::ffff:198.51.100.7")).name(), "office");
  EXPECT_EQ(detector.PolicyFor(Ip("198.51.7.7")).name(), "office-wide");
  EXPECT_EQ(detector.PolicyFor(Ip("2001:db8:5::1")).name(), "v6-customers");
  EXPECT_EQ(detector.PolicyFor(Ip("203.0.113.7")).name(), "default");

  // "office" only checks SOURCE_PRIVATE: a private Contact does not matter there.
  sip::SipUri contact = Uri("sip:1001@192.168.1.101:5062");
  v1::NatVerdict office = detector.Evaluate({Addr("198.51.100.7:5060"), &contact, nullptr, {}});
  EXPECT_EQ(office.policy(), "office");
  EXPECT_EQ(office.state(), v1::NAT_STATE_NOT_BEHIND_NAT);
  v1::NatVerdict other = detector.Evaluate({Addr("203.0.113.7:5060"), &contact, nullptr, {}});
  EXPECT_EQ(other.policy(), "default");
  EXPECT_EQ(other.state(), v1::NAT_STATE_BEHIND_NAT);
}

TEST(NatDetectorTest, Ipv6Source) {
  NatDetector detector = Detector();
  sip::SipUri same = Uri("sip:alice@[2001:db8::5]:5060");
  EXPECT_EQ(detector.Evaluate({Addr("[2001:db8::5]:5060"), &same, nullptr, {Ip("2001:db8::5")}}).state(),
            v1::NAT_STATE_NOT_BEHIND_NAT);

  sip::SipUri ula = Uri("sip:alice@[fd00:1::5]:5060");
  EXPECT_THAT(Reasons(detector.Evaluate({Addr("[2001:db8::5]:5060"), &ula, nullptr, {Ip("fe80::1")}})),
              ElementsAre(v1::NAT_REASON_CONTACT_PRIVATE, v1::NAT_REASON_CONTACT_ADDRESS_MISMATCH,
                          v1::NAT_REASON_SDP_PRIVATE, v1::NAT_REASON_SDP_ADDRESS_MISMATCH));
}

TEST(NatDetectorTest, V4MappedSourceEqualsPlainV4Contact) {
  NatDetector detector = Detector();
  sip::SipUri contact = Uri("sip:alice@203.0.113.7:5060");
  sip::Via via = ViaOf("203.0.113.7:5060");
  NatInput input{Addr("[::ffff:203.0.113.7]:5060"), &contact, &via, {Ip("203.0.113.7")}};
  EXPECT_THAT(Reasons(detector.Evaluate(input)), IsEmpty());
}

// One rule enabled at a time, with an input where it must fire and one where it must not.
struct RuleCase {
  v1::NatReason rule;
  std::string contact;  // empty: no Contact
  std::string via;      // empty: no Via
  std::vector<std::string> sdp;
  std::string source;
  bool fires;
};

// Also names the CTest case, so it lists only what is set: "CONTACT_PRIVATE fires: contact=... source=...".
void PrintTo(const RuleCase& c, std::ostream* out) {
  *out << absl::StripPrefix(v1::NatReason_Name(c.rule), "NAT_REASON_") << (c.fires ? " fires:" : " silent:");
  if (!c.contact.empty()) *out << " contact=" << c.contact;
  if (!c.via.empty()) *out << " via=" << c.via;
  for (const std::string& sdp : c.sdp) *out << " sdp=" << sdp;
  *out << " source=" << c.source;
}

class SingleRuleTest : public ::testing::TestWithParam<RuleCase> {};

TEST_P(SingleRuleTest, FiresExactlyWhenItShould) {
  const RuleCase& c = GetParam();
  NatDetector detector = Detector(absl::StrCat("nat_policies { name: \"one\" rules: ", v1::NatReason_Name(c.rule), " }"));
  std::optional<sip::SipUri> contact;
  if (!c.contact.empty()) contact = Uri(c.contact);
  std::optional<sip::Via> via;
  if (!c.via.empty()) via = ViaOf(c.via);
  NatInput input{Addr(c.source), contact ? &*contact : nullptr, via ? &*via : nullptr, {}};
  for (const std::string& sdp : c.sdp) input.sdp_addresses.push_back(Ip(sdp));
  v1::NatVerdict verdict = detector.Evaluate(input);
  if (c.fires) {
    EXPECT_EQ(verdict.state(), v1::NAT_STATE_BEHIND_NAT);
    EXPECT_THAT(Reasons(verdict), ElementsAre(c.rule));
  } else {
    EXPECT_EQ(verdict.state(), v1::NAT_STATE_NOT_BEHIND_NAT);
    EXPECT_THAT(Reasons(verdict), IsEmpty());
  }
}

INSTANTIATE_TEST_SUITE_P(
    EveryRule, SingleRuleTest,
    ::testing::Values(
        RuleCase{v1::NAT_REASON_CONTACT_PRIVATE, "sip:a@172.16.5.5:5060", "", {}, "172.16.5.5:5060", true},
        RuleCase{v1::NAT_REASON_CONTACT_PRIVATE, "sip:a@100.64.1.1:5060", "", {}, "203.0.113.7:5060", true},
        RuleCase{v1::NAT_REASON_CONTACT_PRIVATE, "sip:a@203.0.113.9:5060", "", {}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_CONTACT_PRIVATE, "sip:a@phone.lan", "", {}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_CONTACT_PRIVATE, "", "", {}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_CONTACT_ADDRESS_MISMATCH, "sip:a@203.0.113.9:5060", "", {}, "203.0.113.7:5060", true},
        RuleCase{v1::NAT_REASON_CONTACT_ADDRESS_MISMATCH, "sip:a@phone.example.com", "", {}, "203.0.113.7:5060", true},
        RuleCase{v1::NAT_REASON_CONTACT_ADDRESS_MISMATCH, "sip:a@203.0.113.7:6000", "", {}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_CONTACT_ADDRESS_MISMATCH, "", "", {}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_CONTACT_PORT_MISMATCH, "sip:a@203.0.113.7", "", {}, "203.0.113.7:5062", true},
        RuleCase{v1::NAT_REASON_CONTACT_PORT_MISMATCH, "sip:a@203.0.113.7", "", {}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_CONTACT_PORT_MISMATCH, "sips:a@203.0.113.7", "", {}, "203.0.113.7:5061", false},
        RuleCase{v1::NAT_REASON_CONTACT_PORT_MISMATCH, "sip:a@203.0.113.7;transport=tls", "", {}, "203.0.113.7:5060",
                 true},
        RuleCase{v1::NAT_REASON_CONTACT_PORT_MISMATCH, "", "", {}, "203.0.113.7:5062", false},
        RuleCase{v1::NAT_REASON_VIA_PRIVATE, "", "SIP/2.0/UDP 10.0.0.8:5060", {}, "203.0.113.7:5060", true},
        RuleCase{v1::NAT_REASON_VIA_PRIVATE, "", "SIP/2.0/UDP 169.254.1.1:5060", {}, "203.0.113.7:5060", true},
        RuleCase{v1::NAT_REASON_VIA_PRIVATE, "", "SIP/2.0/UDP 203.0.113.9:5060", {}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_VIA_PRIVATE, "sip:a@10.0.0.8", "", {}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_VIA_ADDRESS_MISMATCH, "", "SIP/2.0/UDP 203.0.113.9:5060", {}, "203.0.113.7:5060", true},
        RuleCase{v1::NAT_REASON_VIA_ADDRESS_MISMATCH, "", "SIP/2.0/UDP phone.lan", {}, "203.0.113.7:5060", true},
        RuleCase{v1::NAT_REASON_VIA_ADDRESS_MISMATCH, "", "203.0.113.7:41000", {}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_VIA_ADDRESS_MISMATCH, "sip:a@203.0.113.9", "", {}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_VIA_PORT_MISMATCH, "", "SIP/2.0/UDP 203.0.113.7:5062", {}, "203.0.113.7:41234", true},
        RuleCase{v1::NAT_REASON_VIA_PORT_MISMATCH, "", "SIP/2.0/TLS 203.0.113.7", {}, "203.0.113.7:5061", false},
        RuleCase{v1::NAT_REASON_VIA_PORT_MISMATCH, "", "SIP/2.0/UDP 203.0.113.7", {}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_VIA_PORT_MISMATCH, "sip:a@203.0.113.7:1", "", {}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_SDP_PRIVATE, "", "", {"203.0.113.7", "192.168.0.5"}, "203.0.113.7:5060", true},
        RuleCase{v1::NAT_REASON_SDP_PRIVATE, "", "", {"203.0.113.7"}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_SDP_PRIVATE, "", "", {"0.0.0.0"}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_SDP_PRIVATE, "", "", {}, "192.168.0.5:5060", false},
        RuleCase{v1::NAT_REASON_SDP_ADDRESS_MISMATCH, "", "", {"203.0.113.7", "198.51.100.1"}, "203.0.113.7:5060",
                 true},
        RuleCase{v1::NAT_REASON_SDP_ADDRESS_MISMATCH, "", "", {"203.0.113.7", "0.0.0.0", "::"}, "203.0.113.7:5060",
                 false},
        RuleCase{v1::NAT_REASON_SDP_ADDRESS_MISMATCH, "", "", {}, "203.0.113.7:5060", false},
        RuleCase{v1::NAT_REASON_SOURCE_PRIVATE, "", "", {}, "10.20.30.40:5060", true},
        RuleCase{v1::NAT_REASON_SOURCE_PRIVATE, "", "", {}, "[fd00::1]:5060", true},
        RuleCase{v1::NAT_REASON_SOURCE_PRIVATE, "", "", {}, "203.0.113.7:5060", false}));

TEST(NatDetectorTest, SourcePrivateIsOffByDefault) {
  NatDetector detector = Detector();
  sip::Via via = ViaOf("SIP/2.0/UDP 203.0.113.7:5060");  // only the source is private
  EXPECT_THAT(Reasons(detector.Evaluate({Addr("10.20.30.40:5060"), nullptr, &via, {}})),
              ElementsAre(v1::NAT_REASON_VIA_ADDRESS_MISMATCH));
}

TEST(NatDetectorTest, NoInputsMeansNoReasons) {
  NatDetector detector = Detector();
  v1::NatVerdict verdict = detector.Evaluate({Addr("192.168.1.1:5060"), nullptr, nullptr, {}});
  EXPECT_EQ(verdict.state(), v1::NAT_STATE_NOT_BEHIND_NAT);
  EXPECT_THAT(Reasons(verdict), IsEmpty());
}

TEST(NatDetectorTest, CreateErrorsNameTheField) {
  EXPECT_THAT(CreateError(R"pb(nat_policies { name: "a" match_source_cidrs: "192.0.2.0/24" }
                               nat_policies { name: "b" trusted_cidrs: [ "10.0.0.0/8", "x", "y" ] })pb"),
              StartsWith("nat_policies[1].trusted_cidrs[1]: \"x\""));
  EXPECT_THAT(CreateError(R"pb(nat_policies { name: "a" match_source_cidrs: "10.0.0.0/33" })pb"),
              StartsWith("nat_policies[0].match_source_cidrs[0]: "));
  EXPECT_THAT(CreateError(R"pb(nat_policies { name: "a" force_nat_cidrs: "::/129" })pb"),
              StartsWith("nat_policies[0].force_nat_cidrs[0]: "));
  EXPECT_EQ(CreateError(R"pb(nat_policies { name: "a" match_source_cidrs: "10.0.0.0/8" }
                             nat_policies { name: "a" })pb"),
            "nat_policies[1].name: \"a\" is already used by nat_policies[0]");
  EXPECT_EQ(CreateError(R"pb(nat_policies { trusted_cidrs: "10.0.0.0/8" })pb"),
            "nat_policies[0].name: must not be empty");
  EXPECT_EQ(CreateError(R"pb(nat_policies { name: "a" rules: [ NAT_REASON_VIA_PRIVATE, NAT_REASON_UNSPECIFIED ] })pb"),
            "nat_policies[0].rules[1]: 0 is not a NAT rule");
  EXPECT_EQ(CreateError(R"pb(nat_policies { name: "a" rules: [ NAT_REASON_VIA_PRIVATE, NAT_REASON_VIA_PRIVATE ] })pb"),
            "nat_policies[0].rules[1]: NAT_REASON_VIA_PRIVATE is listed twice");
  EXPECT_THAT(CreateError(R"pb(nat_policies { name: "a" keepalive_interval { seconds: 0 } })pb"),
              StartsWith("nat_policies[0].keepalive_interval: "));
  EXPECT_THAT(CreateError(R"pb(nat_policies { name: "a" nat_registration_expiry { seconds: -5 } })pb"),
              StartsWith("nat_policies[0].nat_registration_expiry: "));
  EXPECT_THAT(CreateError(R"pb(nat_policies { name: "all" }
                               nat_policies { name: "late" match_source_cidrs: "10.0.0.0/8" })pb"),
              StartsWith("nat_policies[1]: can never match"));
  EXPECT_THAT(CreateError(R"pb(nat_policies { name: "default" match_source_cidrs: "10.0.0.0/8" })pb"),
              StartsWith("nat_policies[0].name: \"default\""));
}

TEST(NatDetectorTest, CreateRejectsOutOfRangeEnumValues) {
  google::protobuf::RepeatedPtrField<v1::NatPolicy> policies;
  v1::NatPolicy* policy = policies.Add();
  policy->set_name("a");
  policy->add_rules(static_cast<v1::NatReason>(42));
  EXPECT_EQ(NatDetector::Create(policies).status().message(),
            absl::string_view("nat_policies[0].rules[0]: 42 is not a NAT rule"));
  policy->clear_rules();
  policy->set_keepalive_method(static_cast<v1::KeepaliveMethod>(9));
  EXPECT_EQ(NatDetector::Create(policies).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(NatDetector::Create(policies).status().message()),
              HasSubstr("nat_policies[0].keepalive_method"));
}

TEST(NatReasonNameTest, SnakeCaseWithoutPrefix) {
  EXPECT_EQ(NatReasonName(v1::NAT_REASON_CONTACT_PRIVATE), "contact_private");
  EXPECT_EQ(NatReasonName(v1::NAT_REASON_VIA_PORT_MISMATCH), "via_port_mismatch");
  EXPECT_EQ(NatReasonName(v1::NAT_REASON_FORCED_BY_ACL), "forced_by_acl");
  EXPECT_EQ(NatReasonName(v1::NAT_REASON_UNSPECIFIED), "unspecified");
  EXPECT_EQ(NatReasonName(static_cast<v1::NatReason>(99)), "unknown_99");
}

}  // namespace
}  // namespace latchkey::control
