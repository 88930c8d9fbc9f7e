#include "services/control/nat/nat_detector.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/net/quote_for_error.h"
#include "common/status_macros.h"
#include "google/protobuf/duration.pb.h"

namespace latchkey::control {
namespace {

constexpr absl::string_view kCatchAllName = "default";
constexpr int64_t kDefaultNatRegistrationExpirySeconds = 60;
constexpr int64_t kDefaultKeepaliveIntervalSeconds = 30;
constexpr uint32_t kDefaultKeepaliveFailureThreshold = 3;

// The rules of a policy that lists none: SOURCE_PRIVATE would flag every phone on a PBX's own LAN,
// and FORCED_BY_ACL is driven by force_nat_cidrs alone.
constexpr v1::NatReason kDefaultRules[] = {
    v1::NAT_REASON_CONTACT_PRIVATE, v1::NAT_REASON_CONTACT_ADDRESS_MISMATCH, v1::NAT_REASON_CONTACT_PORT_MISMATCH,
    v1::NAT_REASON_VIA_PRIVATE,     v1::NAT_REASON_VIA_ADDRESS_MISMATCH,     v1::NAT_REASON_VIA_PORT_MISMATCH,
    v1::NAT_REASON_SDP_PRIVATE,     v1::NAT_REASON_SDP_ADDRESS_MISMATCH,
};

// NAT rewrites IPv4 peers of a dual-stack socket into ::ffff:a.b.c.d; that is still the same host.
bool SameHost(const net::IpAddress& a, const net::IpAddress& b) { return a.Unmapped() == b.Unmapped(); }

bool IsValidDuration(const google::protobuf::Duration& duration) {
  return duration.seconds() >= 0 && duration.nanos() >= 0 && duration.nanos() <= 999'999'999;
}

google::protobuf::Duration Seconds(int64_t seconds) {
  google::protobuf::Duration duration;
  duration.set_seconds(seconds);
  return duration;
}

bool RuleFires(v1::NatReason rule, const NatInput& input) {
  const net::SocketAddress& source = input.source;
  const sip::SipUri* contact = input.contact;
  const sip::Via* via = input.via;
  switch (rule) {
    case v1::NAT_REASON_CONTACT_PRIVATE:
      return contact != nullptr && contact->ip().has_value() && contact->ip()->IsPrivateOrSpecial();
    case v1::NAT_REASON_CONTACT_ADDRESS_MISMATCH:
      return contact != nullptr && (!contact->ip().has_value() || !SameHost(*contact->ip(), source.ip));
    case v1::NAT_REASON_CONTACT_PORT_MISMATCH:
      return contact != nullptr && contact->EffectivePort() != source.port;
    case v1::NAT_REASON_VIA_PRIVATE:
      return via != nullptr && via->ip().has_value() && via->ip()->IsPrivateOrSpecial();
    case v1::NAT_REASON_VIA_ADDRESS_MISMATCH:
      return via != nullptr && (!via->ip().has_value() || !SameHost(*via->ip(), source.ip));
    case v1::NAT_REASON_VIA_PORT_MISMATCH:
      return via != nullptr && via->EffectivePort() != source.port;
    case v1::NAT_REASON_SDP_PRIVATE:
      return std::any_of(input.sdp_addresses.begin(), input.sdp_addresses.end(),
                         [](const net::IpAddress& ip) { return ip.IsPrivateOrSpecial(); });
    case v1::NAT_REASON_SDP_ADDRESS_MISMATCH:
      return std::any_of(input.sdp_addresses.begin(), input.sdp_addresses.end(), [&](const net::IpAddress& ip) {
        return !ip.IsUnspecified() && !SameHost(ip, source.ip);
      });
    case v1::NAT_REASON_SOURCE_PRIVATE:
      return source.ip.IsPrivateOrSpecial();
    default:  // UNSPECIFIED never fires; FORCED_BY_ACL is evaluated apart (step 3).
      return false;
  }
}

}  // namespace

absl::StatusOr<NatDetector::CompiledPolicy> NatDetector::Compile(const v1::NatPolicy& policy,
                                                                 absl::string_view field) {
  CompiledPolicy compiled;
  compiled.effective = policy;
  v1::NatPolicy& effective = compiled.effective;
  ASSIGN_OR_RETURN(compiled.match_sources,
                   net::CidrSet::Parse(policy.match_source_cidrs(), absl::StrCat(field, ".match_source_cidrs")));
  ASSIGN_OR_RETURN(compiled.trusted, net::CidrSet::Parse(policy.trusted_cidrs(), absl::StrCat(field, ".trusted_cidrs")));
  ASSIGN_OR_RETURN(compiled.force_nat,
                   net::CidrSet::Parse(policy.force_nat_cidrs(), absl::StrCat(field, ".force_nat_cidrs")));

  for (int i = 0; i < policy.rules_size(); ++i) {
    const int rule = policy.rules(i);
    if (rule == v1::NAT_REASON_UNSPECIFIED || !v1::NatReason_IsValid(rule)) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".rules[", i, "]: ", rule, " is not a NAT rule"));
    }
    if (compiled.rules.test(static_cast<size_t>(rule))) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".rules[", i, "]: ",
                                                     v1::NatReason_Name(policy.rules(i)), " is listed twice"));
    }
    compiled.rules.set(static_cast<size_t>(rule));
  }
  if (policy.rules().empty()) {
    for (v1::NatReason rule : kDefaultRules) {
      compiled.rules.set(static_cast<size_t>(rule));
      effective.add_rules(rule);
    }
  }

  if (!policy.has_nat_registration_expiry()) {
    *effective.mutable_nat_registration_expiry() = Seconds(kDefaultNatRegistrationExpirySeconds);
  } else if (!IsValidDuration(policy.nat_registration_expiry())) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".nat_registration_expiry: must be a duration >= 0 (0 keeps the requested expiry)"));
  }
  if (!policy.has_keepalive_interval()) {
    *effective.mutable_keepalive_interval() = Seconds(kDefaultKeepaliveIntervalSeconds);
  } else if (!IsValidDuration(policy.keepalive_interval()) ||
             (policy.keepalive_interval().seconds() == 0 && policy.keepalive_interval().nanos() == 0)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".keepalive_interval: must be a duration > 0"));
  }
  if (!v1::KeepaliveMethod_IsValid(policy.keepalive_method())) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".keepalive_method: ", static_cast<int>(policy.keepalive_method()),
                                                   " is not a KeepaliveMethod"));
  }
  if (policy.keepalive_method() == v1::KEEPALIVE_METHOD_UNSPECIFIED) {
    effective.set_keepalive_method(v1::KEEPALIVE_METHOD_OPTIONS);
  }
  if (policy.keepalive_failure_threshold() == 0) {
    effective.set_keepalive_failure_threshold(kDefaultKeepaliveFailureThreshold);
  }
  return compiled;
}

absl::StatusOr<NatDetector> NatDetector::Create(const google::protobuf::RepeatedPtrField<v1::NatPolicy>& policies) {
  NatDetector detector;
  absl::flat_hash_map<std::string, int> index_by_name;
  int catch_all_index = -1;
  for (int i = 0; i < policies.size(); ++i) {
    const v1::NatPolicy& policy = policies[i];
    const std::string field = absl::StrCat("nat_policies[", i, "]");
    if (catch_all_index >= 0) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": can never match: nat_policies[", catch_all_index,
                                                     "] has no match_source_cidrs and matches every source; put "
                                                     "the catch-all policy last"));
    }
    if (policy.name().empty()) return absl::InvalidArgumentError(absl::StrCat(field, ".name: must not be empty"));
    auto [existing, inserted] = index_by_name.emplace(policy.name(), i);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".name: ", net::QuoteForError(policy.name()),
                                                     " is already used by nat_policies[", existing->second, "]"));
    }
    ASSIGN_OR_RETURN(CompiledPolicy compiled, Compile(policy, field));
    if (compiled.match_sources.empty()) catch_all_index = i;
    detector.policies_.push_back(std::move(compiled));
  }

  if (catch_all_index < 0) {
    if (auto taken = index_by_name.find(kCatchAllName); taken != index_by_name.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "nat_policies[", taken->second, "].name: \"", kCatchAllName,
          "\" is the name of the catch-all policy added when every policy has match_source_cidrs; rename it or "
          "drop its match_source_cidrs"));
    }
    v1::NatPolicy catch_all;
    catch_all.set_name(std::string(kCatchAllName));
    ASSIGN_OR_RETURN(CompiledPolicy compiled, Compile(catch_all, "default policy"));
    detector.policies_.push_back(std::move(compiled));
  }
  return detector;
}

const NatDetector::CompiledPolicy& NatDetector::CompiledFor(const net::IpAddress& source) const {
  for (const CompiledPolicy& policy : policies_) {
    if (policy.match_sources.empty() || policy.match_sources.Contains(source)) return policy;
  }
  return policies_.back();  // unreachable: Create guarantees a catch-all
}

const v1::NatPolicy& NatDetector::PolicyFor(const net::IpAddress& source) const {
  return CompiledFor(source).effective;
}

v1::NatVerdict NatDetector::Evaluate(const NatInput& input) const {
  const CompiledPolicy& policy = CompiledFor(input.source.ip);
  v1::NatVerdict verdict;
  verdict.set_policy(policy.effective.name());
  if (policy.trusted.Contains(input.source.ip)) {
    verdict.set_state(v1::NAT_STATE_NOT_BEHIND_NAT);
    verdict.set_trusted_peer(true);
    return verdict;
  }
  if (input.contact != nullptr && input.contact->ip().has_value() && policy.force_nat.Contains(*input.contact->ip())) {
    verdict.add_reasons(v1::NAT_REASON_FORCED_BY_ACL);
  }
  for (int value = v1::NatReason_MIN; value <= v1::NatReason_MAX; ++value) {
    const auto rule = static_cast<v1::NatReason>(value);
    if (policy.rules.test(static_cast<size_t>(value)) && RuleFires(rule, input)) verdict.add_reasons(rule);
  }
  verdict.set_state(verdict.reasons().empty() ? v1::NAT_STATE_NOT_BEHIND_NAT : v1::NAT_STATE_BEHIND_NAT);
  return verdict;
}

std::string NatReasonName(v1::NatReason reason) {
  const std::string& name = v1::NatReason_Name(reason);
  if (name.empty()) return absl::StrCat("unknown_", static_cast<int>(reason));
  return absl::AsciiStrToLower(absl::StripPrefix(name, "NAT_REASON_"));
}

}  // namespace latchkey::control
