#include "tests/integration/support/udp_peer.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace latchkey::testing {

UdpPeer::UdpPeer() {
  fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t length = sizeof(addr);
  ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &length);
  port_ = ntohs(addr.sin_port);
}

UdpPeer::~UdpPeer() {
  if (fd_ >= 0) ::close(fd_);
}

bool UdpPeer::SendTo(uint16_t port, const std::vector<uint8_t>& data) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  return ::sendto(fd_, data.data(), data.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) ==
         static_cast<ssize_t>(data.size());
}

std::optional<Datagram> UdpPeer::Receive(absl::Duration timeout) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <= 0) return std::nullopt;
  Datagram d;
  d.data.resize(2048);
  sockaddr_in from{};
  socklen_t length = sizeof(from);
  const ssize_t n = ::recvfrom(fd_, d.data.data(), d.data.size(), 0, reinterpret_cast<sockaddr*>(&from), &length);
  if (n < 0) return std::nullopt;
  d.data.resize(static_cast<size_t>(n));
  d.from_port = ntohs(from.sin_port);
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
