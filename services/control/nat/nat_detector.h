#pragma once
// Decides whether an endpoint is behind NAT and reports every rule that fired, under the operator's
// NAT policies (v1::NatPolicy in config.proto; its comments are the specification).
//
// Evaluation order:
//  1. The policy is the first whose match_source_cidrs contain the source IP (an empty list matches
//     every source; Create appends a catch-all "default" policy if the config has none).
//  2. trusted_cidrs contain the source: NOT_BEHIND_NAT, trusted_peer = true, no reasons. Stop.
//  3. force_nat_cidrs contain the Contact host IP: FORCED_BY_ACL. Evaluated whenever the list is
//     non-empty, whether or not `rules` names it.
//  4. Every rule the policy enables, in NatReason order:
//       CONTACT_PRIVATE           Contact host IP is private/special (IpAddress::IsPrivateOrSpecial)
//       CONTACT_ADDRESS_MISMATCH  Contact host is a name, or an IP other than the source IP
//       CONTACT_PORT_MISMATCH     Contact EffectivePort() != source port (catches SIP ALGs)
//       VIA_PRIVATE, VIA_ADDRESS_MISMATCH, VIA_PORT_MISMATCH   the same for the top Via sent-by
//       SDP_PRIVATE               any SDP connection address is private/special
//       SDP_ADDRESS_MISMATCH      any SDP address other than the source IP (0.0.0.0 and :: are skipped:
//                                 they mean "on hold", not an address)
//       SOURCE_PRIVATE            the source IP itself is private/special
//     A rule whose input is absent (no Contact, no Via, no SDP address) does not fire. Addresses
//     compare with IPv4-mapped IPv6 equal to IPv4 (::ffff:1.2.3.4 is 1.2.3.4).
//  State is BEHIND_NAT iff any reason fired; reasons are listed in the order above.
#include <bitset>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/net/cidr.h"
#include "common/net/ip_address.h"
#include "common/net/socket_address.h"
#include "common/sip/uri.h"
#include "common/sip/via.h"
#include "google/protobuf/repeated_field.h"
#include "latchkey/v1/config.pb.h"
#include "latchkey/v1/nat_control.pb.h"
#include "latchkey/v1/types.pb.h"

namespace latchkey::control {

// What is known about one request. The pointers are borrowed for the duration of Evaluate.
struct NatInput {
  // Where the packet really came from.
  net::SocketAddress source;
  // The Contact URI (REGISTER, INVITE), or null.
  const sip::SipUri* contact = nullptr;
  // The top Via, or null.
  const sip::Via* via = nullptr;
  // SDP connection addresses (session and media level), empty for requests without SDP.
  std::vector<net::IpAddress> sdp_addresses;
};

// Immutable after Create, so one instance can serve every thread.
class NatDetector {
 public:
  // Validates the configured policies: CIDRs, names (non-empty, unique), rule values (known, not
  // UNSPECIFIED, not repeated), durations, keepalive method; and that no policy follows a catch-all.
  // INVALID_ARGUMENT names the field, e.g. "nat_policies[1].trusted_cidrs[0]: ...".
  // Defaults are filled into an effective copy of each policy: nat_registration_expiry 60 s,
  // keepalive_interval 30 s, keepalive_method OPTIONS, keepalive_failure_threshold 3, rules = every
  // rule but SOURCE_PRIVATE and FORCED_BY_ACL.
  static absl::StatusOr<NatDetector> Create(const google::protobuf::RepeatedPtrField<v1::NatPolicy>& policies);

  // The effective policy for a source (always one: the last policy is a catch-all).
  const v1::NatPolicy& PolicyFor(const net::IpAddress& source) const;
  v1::NatVerdict Evaluate(const NatInput& input) const;

  // The effective policies in match order.
  int policy_count() const { return static_cast<int>(policies_.size()); }
  const v1::NatPolicy& policy(int index) const { return policies_[static_cast<size_t>(index)].effective; }

 private:
  struct CompiledPolicy {
    v1::NatPolicy effective;
    net::CidrSet match_sources;
    net::CidrSet trusted;
    net::CidrSet force_nat;
    std::bitset<v1::NatReason_ARRAYSIZE> rules;  // indexed by NatReason value
  };

  NatDetector() = default;
  // Validates one policy (`field` is "nat_policies[i]") and fills in its defaults.
  static absl::StatusOr<CompiledPolicy> Compile(const v1::NatPolicy& policy, absl::string_view field);
  const CompiledPolicy& CompiledFor(const net::IpAddress& source) const;

  std::vector<CompiledPolicy> policies_;
};

// "contact_private", "via_port_mismatch", ... for logs and metric labels.
std::string NatReasonName(v1::NatReason reason);

}  // namespace latchkey::control
