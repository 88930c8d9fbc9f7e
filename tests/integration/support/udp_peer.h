#pragma once
// A UDP endpoint on 127.0.0.1 playing a phone's media socket in integration tests.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace latchkey::testing {

struct Datagram {
  std::vector<uint8_t> data;
  uint16_t from_port = 0;
};

class UdpPeer {
 public:
  // Binds 127.0.0.1:`port` or [::1]:`port` (0: any); port() is 0 if that port was taken.
  explicit UdpPeer(bool ipv6 = false, uint16_t port = 0);
  // Binds another loopback IPv4 address (127.0.0.0/8: a second host on this machine); it still
  // sends to 127.0.0.1. (A named factory: a string literal would otherwise pick the bool overload.)
  static std::unique_ptr<UdpPeer> OnIp(const std::string& loopback_ipv4, uint16_t port = 0);
  ~UdpPeer();
  UdpPeer(const UdpPeer&) = delete;
  UdpPeer& operator=(const UdpPeer&) = delete;

  uint16_t port() const { return port_; }
  int fd() const { return fd_; }
  // Sends to the loopback address of this peer's family.
  bool SendTo(uint16_t port, const std::vector<uint8_t>& data);
  std::optional<Datagram> Receive(absl::Duration timeout);
  // Everything that arrives within `quiet` of the previous datagram (or of the call).
  std::vector<Datagram> Drain(absl::Duration quiet);

 private:
  struct Unbound {};
  explicit UdpPeer(Unbound) {}
  int fd_ = -1;
  uint16_t port_ = 0;
  bool ipv6_ = false;
};

// A 172-byte RTP packet (12-byte header + 160 bytes of G.711 payload).
std::vector<uint8_t> RtpPacket(uint32_t ssrc, uint16_t sequence, uint32_t timestamp, uint8_t payload_type = 0);
// A minimal RTCP receiver report (8 bytes).
std::vector<uint8_t> RtcpReceiverReport(uint32_t ssrc);

}  // namespace latchkey::testing
