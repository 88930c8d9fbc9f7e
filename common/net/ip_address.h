#pragma once
// An IPv4 or IPv6 address as a value. Parsing accepts literals only (never host names, never zone
// ids): every address Latchkey handles comes from a packet header, SIP or SDP, where a name or a
// scope would be ambiguous.
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <tuple>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace latchkey::net {

class IpAddress {
 public:
  enum class Family : uint8_t { kV4, kV6 };

  // 0.0.0.0.
  IpAddress();
  static IpAddress FromV4(const in_addr& addr);
  static IpAddress FromV6(const in6_addr& addr);
  // Network-order bytes: a.b.c.d.
  static IpAddress V4(uint8_t a, uint8_t b, uint8_t c, uint8_t d);

  // "1.2.3.4", "2001:db8::1" or "[2001:db8::1]". INVALID_ARGUMENT quotes the text.
  static absl::StatusOr<IpAddress> Parse(absl::string_view text);

  // From a socket address filled by the kernel (AF_INET or AF_INET6); the port is dropped.
  static absl::StatusOr<IpAddress> FromSockaddr(const sockaddr_storage& storage);
  // A sockaddr_in / sockaddr_in6 for this address and `port`; `length` (optional) gets its size.
  sockaddr_storage ToSockaddr(uint16_t port, socklen_t* length = nullptr) const;

  Family family() const { return family_; }
  bool is_v4() const { return family_ == Family::kV4; }
  bool is_v6() const { return family_ == Family::kV6; }
  // Network-order bytes: 4 for IPv4, 16 for IPv6.
  absl::Span<const uint8_t> bytes() const;

  // An IPv6 address of the form ::ffff:a.b.c.d (what a dual-stack socket reports for IPv4 peers).
  bool IsV4Mapped() const;
  // The embedded IPv4 address of a v4-mapped address; any other address unchanged.
  IpAddress Unmapped() const;

  // Canonical text without brackets: "1.2.3.4", "2001:db8::1" (RFC 5952), "::ffff:1.2.3.4".
  std::string ToString() const;
  // As a URI host: IPv6 in brackets.
  std::string ToUriHost() const;

  // RFC 1918, RFC 6598 shared, 192.0.0.0/29, link-local 169.254/16 and fe80::/10, unique-local
  // fc00::/7; a v4-mapped address is judged by its IPv4 address. Such an address in SIP or SDP
  // cannot be reached from the public side.
  bool IsPrivateOrSpecial() const;
  // 127.0.0.0/8 or ::1 (v4-mapped judged as IPv4).
  bool IsLoopback() const;
  // 0.0.0.0 or :: (v4-mapped judged as IPv4).
  bool IsUnspecified() const;

  // Same family and bytes: 1.2.3.4 != ::ffff:1.2.3.4 (compare Unmapped() to treat them alike).
  friend bool operator==(const IpAddress& a, const IpAddress& b) {
    return a.family_ == b.family_ && a.bytes_ == b.bytes_;
  }
  friend bool operator!=(const IpAddress& a, const IpAddress& b) { return !(a == b); }
  // IPv4 before IPv6, then by bytes.
  friend bool operator<(const IpAddress& a, const IpAddress& b) {
    return std::tie(a.family_, a.bytes_) < std::tie(b.family_, b.bytes_);
  }
  template <typename H>
  friend H AbslHashValue(H h, const IpAddress& a) {
    return H::combine(std::move(h), a.family_, a.bytes_);
  }

 private:
  IpAddress(Family family, const std::array<uint8_t, 16>& bytes) : family_(family), bytes_(bytes) {}

  Family family_;
  // Always 16 bytes; IPv4 is kept in its v4-mapped form (::ffff:a.b.c.d) so that bytes()[12..15]
  // and the IPv6 view share one layout.
  std::array<uint8_t, 16> bytes_;
};

}  // namespace latchkey::net
