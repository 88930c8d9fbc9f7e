#include "services/control/sdp/ip_literal.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <string>

namespace latchkey::control::sdp {

std::optional<IpLiteral> ParseIpLiteral(absl::string_view text) {
  // inet_pton needs a NUL-terminated string; anything longer than an IPv6 literal can be rejected
  // before copying.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  const std::string terminated(text);
  std::array<unsigned char, 16> bytes{};
  if (inet_pton(AF_INET, terminated.c_str(), bytes.data()) == 1) {
    const bool zero = std::all_of(bytes.begin(), bytes.begin() + 4, [](unsigned char b) { return b == 0; });
    return IpLiteral{IpFamily::kIpv4, zero};
  }
  if (inet_pton(AF_INET6, terminated.c_str(), bytes.data()) == 1) {
    const bool zero = std::all_of(bytes.begin(), bytes.end(), [](unsigned char b) { return b == 0; });
    return IpLiteral{IpFamily::kIpv6, zero};
  }
  return std::nullopt;
}

}  // namespace latchkey::control::sdp
