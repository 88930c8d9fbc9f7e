#pragma once
// Header parsing for what arrives on a relay media port. Runs once per packet on the hot path, so:
// no allocation, no copies of the payload, and every length read from the wire is checked against
// `size` before it is used (the input is attacker-controlled).
#include <cstddef>
#include <cstdint>
#include <optional>

namespace latchkey::relay {

struct RtpHeader {
  uint8_t payload_type = 0;
  bool marker = false;
  uint16_t sequence = 0;
  uint32_t timestamp = 0;
  uint32_t ssrc = 0;
  size_t header_length = 0;   // fixed header + CSRCs + extension
  size_t payload_length = 0;  // without padding; header_length + payload_length <= packet size
};

// RTP version 2 with CSRC list, extension and padding inside the packet. A second byte of 192-223
// is RTCP under RFC 5761 demultiplexing (rtcp-mux), not RTP with marker + payload type 64-95.
std::optional<RtpHeader> ParseRtp(const uint8_t* data, size_t size);

struct RtcpHeader {
  uint8_t packet_type = 0;  // of the first packet of a compound
  uint32_t sender_ssrc = 0;
};

// RTCP version 2 whose first packet is SR, RR, SDES, BYE, APP, RTPFB, PSFB or XR (200-207), at least
// 8 bytes long and fitting the buffer. Only the first packet is checked: SRTCP appends an index and
// an auth tag, so the length fields need not add up to the datagram size.
std::optional<RtcpHeader> ParseRtcp(const uint8_t* data, size_t size);

enum class PacketKind : uint8_t { kRtp, kRtcp, kStun, kInvalid };

// RFC 7983 first-byte demultiplexing: 0-3 STUN (with the RFC 5389 magic cookie), 128-191 RTP or RTCP
// by the second byte. Everything else (ZRTP, DTLS, TURN channels, garbage) is kInvalid. Only the
// minimum size of each kind is checked; ParseRtp / ParseRtcp do the full validation.
PacketKind Classify(const uint8_t* data, size_t size);

}  // namespace latchkey::relay
