#include "media-relay/ports/udp_socket.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace latchkey::relay {

UdpSocket::~UdpSocket() {
  if (fd_ >= 0) ::close(fd_);
}

UdpSocket& UdpSocket::operator=(UdpSocket&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

absl::StatusOr<UdpSocket> UdpSocket::Bind(const net::IpAddress& ip, uint16_t port) {
  const int family = ip.is_v4() ? AF_INET : AF_INET6;
  int fd = ::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  UdpSocket socket(fd);
  if (family == AF_INET6) {
    int only = 1;  // an IPv6 media socket serves IPv6 only; IPv4 has its own bind address
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof(only));
  }
  sockaddr_storage storage = ip.ToSockaddr(port);
  const socklen_t length = family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    return absl::UnavailableError(absl::StrCat("bind ", ip.ToUriHost(), ":", port, ": ", std::strerror(errno)));
  }
  return socket;
}

}  // namespace latchkey::relay
