#pragma once
// Recognises IPv4/IPv6 address literals in SDP. Local to the SDP code on purpose: SDP only needs
// "which family is this literal, and is it the unspecified address", not a general address type.
#include <optional>

#include "absl/strings/string_view.h"

namespace latchkey::control::sdp {

enum class IpFamily { kIpv4, kIpv6 };

struct IpLiteral {
  IpFamily family;
  // 0.0.0.0 or :: — in SDP this means "do not send to me" (RFC 2543 hold), not a location.
  bool is_unspecified;
};

// Parses a bare literal ("192.0.2.1", "2001:db8::1"; no brackets, no zone). nullopt for anything
// else, including host names.
std::optional<IpLiteral> ParseIpLiteral(absl::string_view text);

}  // namespace latchkey::control::sdp
