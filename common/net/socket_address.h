#pragma once
// An IP address and port, with the text form used in logs and config ("1.2.3.4:5060",
// "[2001:db8::1]:5060") and conversions to the wire (sockaddr) and API (v1::SocketAddress) forms.
#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/net/ip_address.h"
#include "latchkey/v1/types.pb.h"

namespace latchkey::net {

// "5060" -> 5060; anything but 1-65535 in plain decimal is INVALID_ARGUMENT.
absl::StatusOr<uint16_t> ParsePort(absl::string_view text);

struct SocketAddress {
  IpAddress ip;
  uint16_t port = 0;

  // "1.2.3.4:5060" or "[2001:db8::1]:5060"; the port is required. IPv6 needs the brackets.
  static absl::StatusOr<SocketAddress> Parse(absl::string_view text);
  // From a kernel-filled sockaddr (AF_INET / AF_INET6). The port is taken as is, 0 included.
  static absl::StatusOr<SocketAddress> FromSockaddr(const sockaddr_storage& storage);

  sockaddr_storage ToSockaddr(socklen_t* length = nullptr) const { return ip.ToSockaddr(port, length); }
  std::string ToString() const;

  friend bool operator==(const SocketAddress& a, const SocketAddress& b) {
    return a.ip == b.ip && a.port == b.port;
  }
  friend bool operator!=(const SocketAddress& a, const SocketAddress& b) { return !(a == b); }
  template <typename H>
  friend H AbslHashValue(H h, const SocketAddress& a) {
    return H::combine(std::move(h), a.ip, a.port);
  }
};

// Validates an API address. Errors name the field: `source.ip: "300.1.1.1" is not an IP address`,
// `source.port: must be 1-65535, got 0` for field_name "source".
absl::StatusOr<SocketAddress> FromProto(const v1::SocketAddress& proto, absl::string_view field_name);
v1::SocketAddress ToProto(const SocketAddress& address);

}  // namespace latchkey::net
