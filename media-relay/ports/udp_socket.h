#pragma once
// An owned, non-blocking UDP socket bound to a local address. Move-only; closes on destruction.
#include <cstdint>

#include "absl/status/statusor.h"
#include "common/net/ip_address.h"

namespace latchkey::relay {

class UdpSocket {
 public:
  UdpSocket() = default;
  ~UdpSocket();
  UdpSocket(UdpSocket&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  UdpSocket& operator=(UdpSocket&& other) noexcept;
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  // UNAVAILABLE (with errno text) if the port is taken or the address is not local.
  static absl::StatusOr<UdpSocket> Bind(const net::IpAddress& ip, uint16_t port);

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  explicit UdpSocket(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace latchkey::relay
