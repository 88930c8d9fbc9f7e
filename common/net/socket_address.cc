#include "common/net/socket_address.h"

#include <arpa/inet.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/net/quote_for_error.h"
#include "common/status_macros.h"

namespace latchkey::net {

absl::StatusOr<uint16_t> ParsePort(absl::string_view text) {
  // At most 5 digits, so the value cannot overflow before the range check.
  bool digits_only = !text.empty() && text.size() <= 5;
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      digits_only = false;
      break;
    }
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (!digits_only || value < 1 || value > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("port ", QuoteForError(text), " is not a number 1-65535"));
  }
  return static_cast<uint16_t>(value);
}

absl::StatusOr<SocketAddress> SocketAddress::Parse(absl::string_view text) {
  size_t colon;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat(QuoteForError(text), " is not an address: expected \"[IPv6]:PORT\""));
    }
    colon = close + 1;
  } else {
    colon = text.find(':');
    if (colon == absl::string_view::npos || text.find(':', colon + 1) != absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          QuoteForError(text), " is not an address: expected \"IPv4:PORT\" or \"[IPv6]:PORT\""));
    }
  }
  SocketAddress address;
  ASSIGN_OR_RETURN(address.ip, IpAddress::Parse(text.substr(0, colon)));
  ASSIGN_OR_RETURN(address.port, ParsePort(text.substr(colon + 1)));
  return address;
}

absl::StatusOr<SocketAddress> SocketAddress::FromSockaddr(const sockaddr_storage& storage) {
  SocketAddress address;
  ASSIGN_OR_RETURN(address.ip, IpAddress::FromSockaddr(storage));
  address.port = storage.ss_family == AF_INET
                     ? ntohs(reinterpret_cast<const sockaddr_in&>(storage).sin_port)
                     : ntohs(reinterpret_cast<const sockaddr_in6&>(storage).sin6_port);
  return address;
}

std::string SocketAddress::ToString() const { return absl::StrCat(ip.ToUriHost(), ":", port); }

absl::StatusOr<SocketAddress> FromProto(const v1::SocketAddress& proto, absl::string_view field_name) {
  absl::StatusOr<IpAddress> ip = IpAddress::Parse(proto.ip());
  if (!ip.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field_name, ".ip: ", ip.status().message()));
  }
  if (proto.port() < 1 || proto.port() > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(field_name, ".port: must be 1-65535, got ", proto.port()));
  }
  return SocketAddress{*ip, static_cast<uint16_t>(proto.port())};
}

v1::SocketAddress ToProto(const SocketAddress& address) {
  v1::SocketAddress proto;
  proto.set_ip(address.ip.ToString());
  proto.set_port(address.port);
  return proto;
}

}  // namespace latchkey::net
