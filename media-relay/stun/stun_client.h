#pragma once
// A STUN Binding client: asks a STUN server which address our packets arrive from, i.e. the public
// address of a relay behind NAT. Blocking; meant for start-up and a background refresher, never the
// packet path.
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/net/ip_address.h"

namespace latchkey::relay::stun {

struct ServerAddress {
  std::string host;  // a name or an IP literal (without brackets)
  uint16_t port = 3478;

  // "host:3478" / "[2001:db8::1]:3478".
  std::string ToString() const;
};

// "HOST", "HOST:PORT", "IPv4", "IPv4:PORT", "IPv6", "[IPv6]" or "[IPv6]:PORT"; the port defaults to
// 3478. HOST is letters, digits, '-', '.' and '_'. INVALID_ARGUMENT quotes the text.
absl::StatusOr<ServerAddress> ParseServerAddress(absl::string_view text);

// getaddrinfo() for `name` restricted to `family`; the first address. An IP literal is returned as
// is if of that family, else INVALID_ARGUMENT. UNAVAILABLE (with the resolver's message) if nothing
// is found.
absl::StatusOr<net::IpAddress> LookupHost(const std::string& name, net::IpAddress::Family family);

struct DiscoveryOptions {
  // RFC 5389 section 7.2.1: RTO starts at 500 ms and doubles; Rc = 7 requests; after the last,
  // Rm = 16 initial RTOs of waiting. The caller's timeout cuts this (39.5 s in all) short.
  absl::Duration initial_rto = absl::Milliseconds(500);
  int max_requests = 7;
  int last_wait_rtos = 16;
};

// Sends Binding requests to `server` ("HOST[:PORT]", default port 3478) from a UDP socket bound to
// `local_bind`:0 and returns the reflexive IP of the first success response with our transaction id
// (XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS). HOST is resolved in `local_bind`'s family. Datagrams
// that are not STUN, not a Binding response, or carry another transaction id are ignored; the
// socket is connected, so the kernel drops datagrams from other sources.
//
// INVALID_ARGUMENT: bad server text, or an IP literal of the other family. UNAVAILABLE: name not
// resolved, bind/route failure, ICMP port unreachable (fails at once, without waiting for the
// timeout), no answer within `timeout`, an error response, or a success response without an
// address or with an unknown comprehension-required attribute.
absl::StatusOr<net::IpAddress> DiscoverPublicAddress(const std::string& server, const net::IpAddress& local_bind,
                                                     absl::Duration timeout,
                                                     const DiscoveryOptions& options = DiscoveryOptions());

}  // namespace latchkey::relay::stun
