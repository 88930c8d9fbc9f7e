#include "media-relay/packet/rtp_header.h"

namespace latchkey::relay {
namespace {

constexpr size_t kRtpFixedHeader = 12;
constexpr size_t kRtcpMinPacket = 8;  // header + sender SSRC; 4-byte RTCP is CVE-2017-14099
constexpr uint32_t kStunMagicCookie = 0x2112A442;
constexpr size_t kStunHeader = 20;

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

bool IsVersion2(uint8_t first) { return (first >> 6) == 2; }
// RFC 5761 section 4: RTCP packet types 192-223 occupy the byte where RTP has marker + PT.
bool IsRtcpType(uint8_t second) { return second >= 192 && second <= 223; }

}  // namespace

std::optional<RtpHeader> ParseRtp(const uint8_t* data, size_t size) {
  if (data == nullptr || size < kRtpFixedHeader) return std::nullopt;
  if (!IsVersion2(data[0]) || IsRtcpType(data[1])) return std::nullopt;

  size_t header = kRtpFixedHeader + 4 * size_t{data[0] & 0x0fu};
  if (header > size) return std::nullopt;
  if (data[0] & 0x10) {  // extension: 16-bit profile, 16-bit length in 32-bit words
    if (size - header < 4) return std::nullopt;
    const size_t words = Be16(data + header + 2);
    header += 4;
    if (size - header < 4 * words) return std::nullopt;
    header += 4 * words;
  }
  size_t padding = 0;
  if (data[0] & 0x20) {
    // The count includes itself, so 0 is malformed; it must not eat into the header.
    padding = data[size - 1];
    if (padding == 0 || padding > size - header) return std::nullopt;
  }

  RtpHeader rtp;
  rtp.payload_type = data[1] & 0x7f;
  rtp.marker = (data[1] & 0x80) != 0;
  rtp.sequence = Be16(data + 2);
  rtp.timestamp = Be32(data + 4);
  rtp.ssrc = Be32(data + 8);
  rtp.header_length = header;
  rtp.payload_length = size - header - padding;
  return rtp;
}

std::optional<RtcpHeader> ParseRtcp(const uint8_t* data, size_t size) {
  if (data == nullptr || size < kRtcpMinPacket) return std::nullopt;
  if (!IsVersion2(data[0])) return std::nullopt;
  const uint8_t type = data[1];
  if (type < 200 || type > 207) return std::nullopt;
  // Length in 32-bit words minus one. Length 0 (a bare 4-byte header) is refused even when more
  // bytes follow: the sender SSRC would then be read from outside the packet.
  const size_t words = Be16(data + 2);
  if (words < 1 || (words + 1) * 4 > size) return std::nullopt;

  // SR and RR carry RC report blocks of 6 words; they must fit in the declared length.
  const size_t count = data[0] & 0x1fu;
  if (type == 200 && words < 6 + 6 * count) return std::nullopt;
  if (type == 201 && words < 1 + 6 * count) return std::nullopt;

  RtcpHeader rtcp;
  rtcp.packet_type = type;
  rtcp.sender_ssrc = Be32(data + 4);
  return rtcp;
}

PacketKind Classify(const uint8_t* data, size_t size) {
  if (data == nullptr || size == 0) return PacketKind::kInvalid;
  const uint8_t first = data[0];
  if (first <= 3) {
    if (size < kStunHeader || Be32(data + 4) != kStunMagicCookie) return PacketKind::kInvalid;
    return PacketKind::kStun;
  }
  if (first >= 128 && first <= 191) {
    if (size < 2) return PacketKind::kInvalid;
    if (IsRtcpType(data[1])) return size >= kRtcpMinPacket ? PacketKind::kRtcp : PacketKind::kInvalid;
    return size >= kRtpFixedHeader ? PacketKind::kRtp : PacketKind::kInvalid;
  }
  return PacketKind::kInvalid;
}

}  // namespace latchkey::relay
