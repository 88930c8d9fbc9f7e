#pragma once
// IPv4/UDP framing for keepalives sent from the registrar's address (a raw socket with IP_HDRINCL)
// and for the copies of its replies that a raw IPPROTO_UDP socket receives. IPv4 only: Linux has no
// portable header-including IPv6 raw socket, so IPv6 registrars are kept alive in own-socket mode.
#include <linux/filter.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/net/socket_address.h"

namespace latchkey::relay {

inline constexpr size_t kIpv4UdpHeaders = 28;

// Writes the 20-byte IPv4 header (DF, TTL 64, checksum left to the kernel) and the 8-byte UDP
// header (checksum computed over the pseudo-header) for `payload`. Both addresses must be IPv4.
void WriteIpv4UdpHeaders(const net::SocketAddress& source, const net::SocketAddress& destination,
                         absl::string_view payload, uint8_t* out);

struct RawUdpDatagram {
  net::SocketAddress source;
  net::SocketAddress destination;
  absl::string_view payload;  // a view into the packet
};

// Parses an IPv4 packet carrying UDP (untrusted: from the wire). nullopt for anything else, for
// fragments and for lengths that disagree with the buffer.
std::optional<RawUdpDatagram> ParseIpv4Udp(const uint8_t* data, size_t length);

// A classic BPF program for a raw IPPROTO_UDP socket: accept unfragmented UDP datagrams whose
// destination port is one of `ports` (1-64 of them), drop the rest in the kernel, so the socket
// does not wake for the host's media traffic.
std::vector<sock_filter> UdpDestinationPortFilter(const std::vector<uint16_t>& ports);

}  // namespace latchkey::relay
