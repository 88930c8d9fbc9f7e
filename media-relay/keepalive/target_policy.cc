#include "media-relay/keepalive/target_policy.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/net/socket_address.h"
#include "common/time/proto_time.h"

namespace latchkey::relay {
namespace {

TargetVerdict Refuse(TargetRefusal refusal, absl::Status status) { return {refusal, std::move(status), false}; }

// Never a keepalive destination, whatever the config: no one host answers these.
bool NeverSendable(const net::IpAddress& ip) {
  if (ip.IsUnspecified()) return true;
  const absl::Span<const uint8_t> bytes = ip.bytes();
  if (ip.is_v4()) return bytes[0] == 0 || bytes[0] >= 224;  // "this network", multicast, reserved, broadcast
  return bytes[0] == 0xff;                                   // multicast
}

}  // namespace

absl::string_view TargetRefusalLabel(TargetRefusal refusal) {
  switch (refusal) {
    case TargetRefusal::kNone: return "none";
    case TargetRefusal::kForeignSource: return "foreign_source";
    case TargetRefusal::kSpecialDestination: return "special_destination";
    case TargetRefusal::kLoopback: return "loopback_destination";
    case TargetRefusal::kPrivate: return "private_destination";
    case TargetRefusal::kTooMany: return "too_many";
  }
  return "unknown";
}

TargetVerdict CheckKeepaliveTarget(const KeepaliveTargetPolicy& policy, v1::KeepaliveTarget* target, size_t held,
                                   bool is_new) {
  if (is_new && held >= policy.max_targets) {
    return Refuse(TargetRefusal::kTooMany,
                  absl::ResourceExhaustedError(absl::StrCat("max_keepalive_targets: this relay holds ", held,
                                                            " keepalive targets, its limit")));
  }
  auto destination = net::FromProto(target->destination(), "destination");
  if (!destination.ok()) return Refuse(TargetRefusal::kSpecialDestination, destination.status());
  const net::IpAddress ip = destination->ip.Unmapped();
  if (NeverSendable(ip)) {
    return Refuse(TargetRefusal::kSpecialDestination,
                  absl::PermissionDeniedError(absl::StrCat("destination: ", destination->ToString(),
                                                           " is not a unicast host address")));
  }
  if (ip.IsLoopback() && !policy.allow_loopback) {
    return Refuse(TargetRefusal::kLoopback,
                  absl::PermissionDeniedError(absl::StrCat("destination: ", destination->ToString(),
                                                           " is loopback (keepalive_allow_loopback is off)")));
  }
  if (ip.IsPrivateOrSpecial() && !policy.allow_private) {
    return Refuse(TargetRefusal::kPrivate,
                  absl::PermissionDeniedError(absl::StrCat("destination: ", destination->ToString(),
                                                           " is private (keepalive_allow_private is off)")));
  }
  if (policy.mode == v1::KEEPALIVE_SOURCE_MODE_REGISTRAR_SOURCE) {
    auto registrar = net::FromProto(target->registrar(), "registrar");
    if (!registrar.ok()) return Refuse(TargetRefusal::kForeignSource, registrar.status());
    const net::IpAddress source = registrar->ip.Unmapped();
    const bool own = std::any_of(policy.sources.begin(), policy.sources.end(),
                                 [&](const net::IpAddress& s) { return s.Unmapped() == source; });
    if (!own) {
      return Refuse(TargetRefusal::kForeignSource,
                    absl::PermissionDeniedError(absl::StrCat("registrar: ", source.ToString(),
                                                             " is not one of this relay's keepalive_source_ips")));
    }
  }
  TargetVerdict verdict;
  if (FromProto(target->interval()) < policy.min_interval) {
    *target->mutable_interval() = ToProto(policy.min_interval);
    verdict.interval_raised = true;
  }
  return verdict;
}

}  // namespace latchkey::relay
