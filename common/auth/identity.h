#pragma once
// Who a peer is: the URI SAN of its certificate, spiffe://TRUST_DOMAIN/latchkey/ROLE/NAME (the
// service-mesh convention, so a SPIRE- or cert-manager-issued certificate fits as it is).
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace latchkey::auth {

enum class Role : uint8_t {
  kPbx,       // binding and session RPCs, on its own records only
  kOperator,  // also lists and watches everything, drains and undrains workers
  kWorker,    // the worker registry, for the worker id its certificate names only
  kControl,   // the only caller a relay's RelayService accepts
};

absl::string_view RoleName(Role role);
std::optional<Role> ParseRole(absl::string_view text);

struct PeerIdentity {
  Role role = Role::kPbx;
  std::string name;  // 1-128 of [A-Za-z0-9._-]; for a worker, its worker id

  bool operator==(const PeerIdentity&) const = default;
};

// The text form, for logs and errors: "worker/relay-a".
std::string ToString(const PeerIdentity& identity);
std::string SpiffeId(absl::string_view trust_domain, const PeerIdentity& identity);

// Parses one URI SAN. INVALID_ARGUMENT saying what is wrong (not spiffe, another trust domain, not a
// latchkey path, unknown role, bad name); the caller turns it into UNAUTHENTICATED.
absl::StatusOr<PeerIdentity> ParseSpiffeId(absl::string_view uri, absl::string_view trust_domain);

// A trust domain as SPIFFE allows it: lowercase letters, digits, '.', '-', '_'; 1-255 bytes.
bool ValidTrustDomain(absl::string_view trust_domain);

}  // namespace latchkey::auth
