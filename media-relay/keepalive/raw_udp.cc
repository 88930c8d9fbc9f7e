#include "media-relay/keepalive/raw_udp.h"

#include <netinet/in.h>

#include <cstring>

namespace latchkey::relay {
namespace {

void Put16(uint8_t* out, uint16_t value) {
  out[0] = static_cast<uint8_t>(value >> 8);
  out[1] = static_cast<uint8_t>(value);
}

uint16_t Get16(const uint8_t* in) { return static_cast<uint16_t>(in[0] << 8 | in[1]); }

// One's-complement sum of big-endian 16-bit words (RFC 1071).
uint32_t Sum(const uint8_t* data, size_t length, uint32_t sum) {
  for (size_t i = 0; i + 1 < length; i += 2) sum += Get16(data + i);
  if (length % 2) sum += static_cast<uint32_t>(data[length - 1]) << 8;
  return sum;
}

uint16_t Fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace

void WriteIpv4UdpHeaders(const net::SocketAddress& source, const net::SocketAddress& destination,
                         absl::string_view payload, uint8_t* out) {
  const uint16_t udp_length = static_cast<uint16_t>(8 + payload.size());
  uint8_t* ip = out;
  ip[0] = 0x45;  // version 4, 5 words
  ip[1] = 0;
  Put16(ip + 2, static_cast<uint16_t>(20 + udp_length));
  Put16(ip + 4, 0);       // id: the kernel fills it in
  Put16(ip + 6, 0x4000);  // don't fragment
  ip[8] = 64;
  ip[9] = IPPROTO_UDP;
  Put16(ip + 10, 0);  // the kernel computes the header checksum
  std::memcpy(ip + 12, source.ip.bytes().data(), 4);
  std::memcpy(ip + 16, destination.ip.bytes().data(), 4);

  uint8_t* udp = out + 20;
  Put16(udp, source.port);
  Put16(udp + 2, destination.port);
  Put16(udp + 4, udp_length);
  Put16(udp + 6, 0);
  uint32_t sum = Sum(ip + 12, 8, 0);  // pseudo-header: addresses, protocol, UDP length
  sum += IPPROTO_UDP;
  sum += udp_length;
  sum = Sum(udp, 8, sum);
  sum = Sum(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), sum);
  uint16_t checksum = Fold(sum);
  if (checksum == 0) checksum = 0xffff;  // 0 means "no checksum" in UDP over IPv4
  Put16(udp + 6, checksum);
}

std::optional<RawUdpDatagram> ParseIpv4Udp(const uint8_t* data, size_t length) {
  if (length < 20 || (data[0] >> 4) != 4) return std::nullopt;
  const size_t header = static_cast<size_t>(data[0] & 0x0f) * 4;
  if (header < 20 || length < header + 8 || data[9] != IPPROTO_UDP) return std::nullopt;
  const uint16_t total = Get16(data + 2);
  if (total < header + 8 || total > length) return std::nullopt;
  if ((Get16(data + 6) & 0x3fff) != 0) return std::nullopt;  // a fragment (MF set or an offset)
  const uint8_t* udp = data + header;
  const uint16_t udp_length = Get16(udp + 4);
  if (udp_length < 8 || header + udp_length > total) return std::nullopt;
  in_addr src, dst;
  std::memcpy(&src, data + 12, 4);
  std::memcpy(&dst, data + 16, 4);
  RawUdpDatagram out;
  out.source = {net::IpAddress::FromV4(src), Get16(udp)};
  out.destination = {net::IpAddress::FromV4(dst), Get16(udp + 2)};
  out.payload = absl::string_view(reinterpret_cast<const char*>(udp + 8), udp_length - 8u);
  return out;
}

std::vector<sock_filter> UdpDestinationPortFilter(const std::vector<uint16_t>& ports) {
  // A raw IPPROTO_UDP socket sees the IP header first.
  std::vector<sock_filter> program;
  const uint8_t n = static_cast<uint8_t>(ports.size());
  program.push_back(BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 6));  // flags + fragment offset
  // A fragment: jump over the next n + 2 instructions to the "drop".
  program.push_back(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x3fff, static_cast<uint8_t>(n + 2), 0));
  program.push_back(BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 0));  // X = IP header length
  program.push_back(BPF_STMT(BPF_LD | BPF_H | BPF_IND, 2));   // A = UDP destination port
  for (uint8_t i = 0; i < n; ++i) {
    // Equal: jump to "accept" (after the remaining comparisons and the drop).
    program.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ports[i], static_cast<uint8_t>(n - i), 0));
  }
  program.push_back(BPF_STMT(BPF_RET | BPF_K, 0));        // drop
  program.push_back(BPF_STMT(BPF_RET | BPF_K, 0xffff));   // accept
  return program;
}

}  // namespace latchkey::relay
