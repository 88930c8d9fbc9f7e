#include "common/auth/identity.h"

#include <array>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace latchkey::auth {
namespace {

constexpr std::array<absl::string_view, 4> kRoleNames = {"pbx", "operator", "worker", "control"};

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return name != "." && name != "..";
}

}  // namespace

absl::string_view RoleName(Role role) { return kRoleNames[static_cast<size_t>(role)]; }

std::optional<Role> ParseRole(absl::string_view text) {
  for (size_t i = 0; i < kRoleNames.size(); ++i) {
    if (kRoleNames[i] == text) return static_cast<Role>(i);
  }
  return std::nullopt;
}

std::string ToString(const PeerIdentity& identity) { return absl::StrCat(RoleName(identity.role), "/", identity.name); }

std::string SpiffeId(absl::string_view trust_domain, const PeerIdentity& identity) {
  return absl::StrCat("spiffe://", trust_domain, "/latchkey/", RoleName(identity.role), "/", identity.name);
}

bool ValidTrustDomain(absl::string_view trust_domain) {
  if (trust_domain.empty() || trust_domain.size() > 255) return false;
  for (char c : trust_domain) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

absl::StatusOr<PeerIdentity> ParseSpiffeId(absl::string_view uri, absl::string_view trust_domain) {
  constexpr absl::string_view kScheme = "spiffe://";
  // SPIFFE IDs are case-sensitive in the path and lowercase in scheme and trust domain.
  if (!absl::StartsWith(uri, kScheme)) return absl::InvalidArgumentError("not a spiffe:// identity");
  absl::string_view rest = uri.substr(kScheme.size());
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) return absl::InvalidArgumentError("spiffe id has no path");
  if (rest.substr(0, slash) != trust_domain) {
    return absl::InvalidArgumentError(absl::StrCat("trust domain is not \"", trust_domain, "\""));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(rest.substr(slash + 1), '/');
  if (parts.size() != 3 || parts[0] != "latchkey") {
    return absl::InvalidArgumentError("path is not /latchkey/ROLE/NAME");
  }
  std::optional<Role> role = ParseRole(parts[1]);
  if (!role) return absl::InvalidArgumentError("role is not pbx, operator, worker or control");
  if (!ValidName(parts[2])) return absl::InvalidArgumentError("name is not 1-128 of letters, digits, . _ -");
  return PeerIdentity{*role, std::string(parts[2])};
}

}  // namespace latchkey::auth
