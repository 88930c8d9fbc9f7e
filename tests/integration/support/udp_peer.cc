#include "tests/integration/support/udp_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace latchkey::testing {

namespace {

sockaddr_storage Loopback(bool ipv6, uint16_t port, socklen_t* length) {
  sockaddr_storage storage{};
  if (ipv6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&storage);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    a->sin6_port = htons(port);
    *length = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&storage);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons(port);
    *length = sizeof(sockaddr_in);
  }
  return storage;
}

// sin_port and sin6_port sit at the same offset; read through the right type anyway.
uint16_t PortOf(const sockaddr_storage& storage) {
  return storage.ss_family == AF_INET6 ? ntohs(reinterpret_cast<const sockaddr_in6&>(storage).sin6_port)
                                       : ntohs(reinterpret_cast<const sockaddr_in&>(storage).sin_port);
}

}  // namespace

UdpPeer::UdpPeer(bool ipv6, uint16_t port) : ipv6_(ipv6) {
  fd_ = ::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  socklen_t length = 0;
  sockaddr_storage addr = Loopback(ipv6, port, &length);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), length) != 0) return;
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &length);
  port_ = PortOf(addr);
}

std::unique_ptr<UdpPeer> UdpPeer::OnIp(const std::string& loopback_ipv4, uint16_t port) {
  auto peer = std::unique_ptr<UdpPeer>(new UdpPeer(Unbound{}));
  peer->fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, loopback_ipv4.c_str(), &addr.sin_addr) != 1 || (ntohl(addr.sin_addr.s_addr) >> 24) != 127) {
    return peer;  // loopback only: tests send nowhere else
  }
  if (::bind(peer->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return peer;
  socklen_t length = sizeof(addr);
  ::getsockname(peer->fd_, reinterpret_cast<sockaddr*>(&addr), &length);
  peer->port_ = ntohs(addr.sin_port);
  return peer;
}

UdpPeer::~UdpPeer() {
  if (fd_ >= 0) ::close(fd_);
}

bool UdpPeer::SendTo(uint16_t port, const std::vector<uint8_t>& data) {
  socklen_t length = 0;
  sockaddr_storage to = Loopback(ipv6_, port, &length);
  return ::sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&to), length) ==
         static_cast<ssize_t>(data.size());
}

std::optional<Datagram> UdpPeer::Receive(absl::Duration timeout) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <= 0) return std::nullopt;
  Datagram d;
  d.data.resize(2048);
  sockaddr_storage from{};
  socklen_t length = sizeof(from);
  const ssize_t n = ::recvfrom(fd_, d.data.data(), d.data.size(), 0, reinterpret_cast<sockaddr*>(&from), &length);
  if (n < 0) return std::nullopt;
  d.data.resize(static_cast<size_t>(n));
  d.from_port = PortOf(from);
  return d;
}

std::vector<Datagram> UdpPeer::Drain(absl::Duration quiet) {
  std::vector<Datagram> out;
  while (auto d = Receive(quiet)) out.push_back(std::move(*d));
  return out;
}

std::vector<uint8_t> RtpPacket(uint32_t ssrc, uint16_t sequence, uint32_t timestamp, uint8_t payload_type) {
  std::vector<uint8_t> p(172, 0xD5);  // G.711 A-law silence
  p[0] = 0x80;
  p[1] = payload_type & 0x7f;
  p[2] = static_cast<uint8_t>(sequence >> 8);
  p[3] = static_cast<uint8_t>(sequence);
  for (int i = 0; i < 4; ++i) {
    p[4 + i] = static_cast<uint8_t>(timestamp >> (24 - 8 * i));
    p[8 + i] = static_cast<uint8_t>(ssrc >> (24 - 8 * i));
  }
  return p;
}

std::vector<uint8_t> RtcpReceiverReport(uint32_t ssrc) {
  std::vector<uint8_t> p = {0x80, 201, 0, 1, 0, 0, 0, 0};
  for (int i = 0; i < 4; ++i) p[4 + i] = static_cast<uint8_t>(ssrc >> (24 - 8 * i));
  return p;
}

}  // namespace latchkey::testing
