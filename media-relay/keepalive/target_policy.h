#pragma once
// What a relay agrees to keep alive, whoever asks. Control's word is not enough: a SetKeepalives call
// makes this host send packets with a source address and to a destination named in the request, so a
// stolen control credential (or a bug) must not turn the relay into a spoofing reflector.
//
// Rules, checked per target before it is held:
// 1. REGISTRAR_SOURCE mode: the registrar (the source of the raw packets) is one of the relay's own
//    `sources` (keepalive_source_ips). OWN_SOCKET mode sends from its own socket and ignores it.
// 2. The destination is unicast and routable: never unspecified, "this network", multicast, broadcast
//    or reserved; loopback only with `allow_loopback`; private, shared (CGNAT) and link-local only
//    with `allow_private`; port not 0.
// 3. The interval is at least `min_interval`: a shorter one is raised to it (counted), not refused,
//    so a NAT policy tighter than the relay's floor still gets keepalives.
// 4. At most `max_targets` are held: new targets past it are refused (changes to held ones are not).
// Every refusal is a reason; the caller lists it in SetKeepalivesResponse.refused and counts it.
#include <cstdint>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/net/ip_address.h"
#include "latchkey/v1/config.pb.h"
#include "latchkey/v1/worker.pb.h"

namespace latchkey::relay {

enum class TargetRefusal : uint8_t { kNone, kForeignSource, kSpecialDestination, kLoopback, kPrivate, kTooMany };
absl::string_view TargetRefusalLabel(TargetRefusal refusal);

struct KeepaliveTargetPolicy {
  v1::KeepaliveSourceMode mode = v1::KEEPALIVE_SOURCE_MODE_REGISTRAR_SOURCE;
  std::vector<net::IpAddress> sources;
  bool allow_private = false;
  bool allow_loopback = false;
  absl::Duration min_interval = absl::Seconds(5);
  size_t max_targets = 1'000'000;
};

struct TargetVerdict {
  TargetRefusal refusal = TargetRefusal::kNone;
  // When refused, naming the field: PERMISSION_DENIED (rules 1-2), RESOURCE_EXHAUSTED (rule 4), or
  // INVALID_ARGUMENT for an address that does not parse or has port 0.
  absl::Status status;
  bool interval_raised = false;
  bool ok() const { return refusal == TargetRefusal::kNone; }
};

// Checks `target` and raises its interval to the floor in place. `held` is how many targets are held
// now and `is_new` whether this one would be added.
TargetVerdict CheckKeepaliveTarget(const KeepaliveTargetPolicy& policy, v1::KeepaliveTarget* target, size_t held,
                                   bool is_new);

}  // namespace latchkey::relay
