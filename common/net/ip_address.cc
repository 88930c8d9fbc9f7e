#include "common/net/ip_address.h"

#include <arpa/inet.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/net/quote_for_error.h"

namespace latchkey::net {
namespace {

constexpr std::array<uint8_t, 16> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};

absl::Status NotAnIp(absl::string_view text) {
  return absl::InvalidArgumentError(absl::StrCat(QuoteForError(text), " is not an IP address"));
}

// Literal characters only: this rules out host names, zone ids ("%eth0"), spaces and NUL bytes
// before inet_pton (which would stop at a NUL) ever sees the text.
bool HasOnlyLiteralChars(absl::string_view text) {
  for (char c : text) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
              c == '.';
    if (!ok) return false;
  }
  return true;
}

bool V4InPrefix(const uint8_t* v4, uint8_t a, uint8_t b, int prefix_len) {
  uint32_t address = (uint32_t{v4[0]} << 24) | (uint32_t{v4[1]} << 16) | (uint32_t{v4[2]} << 8) | v4[3];
  uint32_t network = (uint32_t{a} << 24) | (uint32_t{b} << 16);
  uint32_t mask = prefix_len == 0 ? 0 : ~uint32_t{0} << (32 - prefix_len);
  return (address & mask) == (network & mask);
}

}  // namespace

IpAddress::IpAddress() : family_(Family::kV4), bytes_(kV4MappedPrefix) {}

IpAddress IpAddress::FromV4(const in_addr& addr) {
  std::array<uint8_t, 16> bytes = kV4MappedPrefix;
  std::memcpy(bytes.data() + 12, &addr.s_addr, 4);
  return IpAddress(Family::kV4, bytes);
}

IpAddress IpAddress::FromV6(const in6_addr& addr) {
  std::array<uint8_t, 16> bytes;
  std::memcpy(bytes.data(), addr.s6_addr, 16);
  return IpAddress(Family::kV6, bytes);
}

IpAddress IpAddress::V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  std::array<uint8_t, 16> bytes = kV4MappedPrefix;
  bytes[12] = a;
  bytes[13] = b;
  bytes[14] = c;
  bytes[15] = d;
  return IpAddress(Family::kV4, bytes);
}

absl::StatusOr<IpAddress> IpAddress::Parse(absl::string_view text) {
  absl::string_view literal = text;
  bool bracketed = false;
  if (!literal.empty() && literal.front() == '[') {
    if (literal.size() < 2 || literal.back() != ']') return NotAnIp(text);
    literal = literal.substr(1, literal.size() - 2);
    bracketed = true;
  }
  if (literal.find('%') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(QuoteForError(text), " is not an IP address (zone ids are not supported)"));
  }
  // INET6_ADDRSTRLEN (46) covers the longest literal, "ffff:...:255.255.255.255".
  char buffer[INET6_ADDRSTRLEN];
  if (literal.empty() || literal.size() >= sizeof(buffer) || !HasOnlyLiteralChars(literal)) {
    return NotAnIp(text);
  }
  std::memcpy(buffer, literal.data(), literal.size());
  buffer[literal.size()] = '\0';

  if (!bracketed && literal.find(':') == absl::string_view::npos) {
    in_addr v4;
    if (inet_pton(AF_INET, buffer, &v4) != 1) return NotAnIp(text);
    return FromV4(v4);
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, buffer, &v6) != 1) return NotAnIp(text);
  return FromV6(v6);
}

absl::StatusOr<IpAddress> IpAddress::FromSockaddr(const sockaddr_storage& storage) {
  switch (storage.ss_family) {
    case AF_INET: return FromV4(reinterpret_cast<const sockaddr_in&>(storage).sin_addr);
    case AF_INET6: return FromV6(reinterpret_cast<const sockaddr_in6&>(storage).sin6_addr);
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("socket address family ", storage.ss_family, " is neither AF_INET nor AF_INET6"));
  }
}

sockaddr_storage IpAddress::ToSockaddr(uint16_t port, socklen_t* length) const {
  sockaddr_storage storage;
  std::memset(&storage, 0, sizeof(storage));
  if (is_v4()) {
    auto& sin = reinterpret_cast<sockaddr_in&>(storage);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    std::memcpy(&sin.sin_addr.s_addr, bytes_.data() + 12, 4);
    if (length != nullptr) *length = sizeof(sockaddr_in);
  } else {
    auto& sin6 = reinterpret_cast<sockaddr_in6&>(storage);
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    std::memcpy(sin6.sin6_addr.s6_addr, bytes_.data(), 16);
    if (length != nullptr) *length = sizeof(sockaddr_in6);
  }
  return storage;
}

absl::Span<const uint8_t> IpAddress::bytes() const {
  if (is_v4()) return absl::MakeConstSpan(bytes_.data() + 12, 4);
  return absl::MakeConstSpan(bytes_.data(), 16);
}

bool IpAddress::IsV4Mapped() const {
  return is_v6() && std::memcmp(bytes_.data(), kV4MappedPrefix.data(), 12) == 0;
}

IpAddress IpAddress::Unmapped() const {
  if (!IsV4Mapped()) return *this;
  return IpAddress(Family::kV4, bytes_);  // the v4 layout is the mapped one
}

std::string IpAddress::ToString() const {
  char buffer[INET6_ADDRSTRLEN];
  if (is_v4()) {
    inet_ntop(AF_INET, bytes_.data() + 12, buffer, sizeof(buffer));
  } else {
    inet_ntop(AF_INET6, bytes_.data(), buffer, sizeof(buffer));
  }
  return buffer;
}

std::string IpAddress::ToUriHost() const {
  if (is_v4()) return ToString();
  return absl::StrCat("[", ToString(), "]");
}

bool IpAddress::IsPrivateOrSpecial() const {
  if (is_v4() || IsV4Mapped()) {
    const uint8_t* v4 = bytes_.data() + 12;
    return V4InPrefix(v4, 10, 0, 8) ||                           // RFC 1918
           V4InPrefix(v4, 172, 16, 12) ||                        // RFC 1918
           V4InPrefix(v4, 192, 168, 16) ||                       // RFC 1918
           V4InPrefix(v4, 100, 64, 10) ||                        // RFC 6598 carrier-grade NAT
           (v4[0] == 192 && v4[1] == 0 && v4[2] == 0 && v4[3] < 8) ||  // 192.0.0.0/29 (DS-Lite)
           V4InPrefix(v4, 169, 254, 16);                         // link-local
  }
  return (bytes_[0] & 0xfe) == 0xfc ||                          // fc00::/7 unique-local
         (bytes_[0] == 0xfe && (bytes_[1] & 0xc0) == 0x80);     // fe80::/10 link-local
}

bool IpAddress::IsLoopback() const {
  if (is_v4() || IsV4Mapped()) return bytes_[12] == 127;
  for (int i = 0; i < 15; ++i) {
    if (bytes_[i] != 0) return false;
  }
  return bytes_[15] == 1;
}

bool IpAddress::IsUnspecified() const {
  if (is_v4() || IsV4Mapped()) return bytes_[12] == 0 && bytes_[13] == 0 && bytes_[14] == 0 && bytes_[15] == 0;
  for (uint8_t byte : bytes_) {
    if (byte != 0) return false;
  }
  return true;
}

}  // namespace latchkey::net
