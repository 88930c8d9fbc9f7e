#pragma once
// Plain value types of the SDP model (RFC 4566), shared by the parser and the rewriter.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "services/control/sdp/ip_literal.h"

namespace latchkey::control::sdp {

// A direction attribute (RFC 3264 section 6.1) as written; kUnspecified: none was written.
enum class Direction { kUnspecified, kSendRecv, kSendOnly, kRecvOnly, kInactive };

inline absl::string_view DirectionName(Direction direction) {
  switch (direction) {
    case Direction::kSendRecv: return "sendrecv";
    case Direction::kSendOnly: return "sendonly";
    case Direction::kRecvOnly: return "recvonly";
    case Direction::kInactive: return "inactive";
    case Direction::kUnspecified: break;
  }
  return "unspecified";
}

enum class LineEnding { kCrlf, kLf };

// One line as received, split into text and terminator so that a rewrite can reproduce every line
// it does not change byte-for-byte.
struct SdpLine {
  char type = '\0';        // the letter before '=': 'v', 'o', 'c', 'm', 'a', ...
  std::string text;        // without terminator, e.g. "a=rtpmap:0 PCMU/8000"
  std::string terminator;  // "\r\n", "\n", or "" (last line without one)
};

// o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>
struct Origin {
  std::string username;
  std::string session_id;
  std::string session_version;
  std::string network_type;  // "IN"
  std::string address_type;  // "IP4" / "IP6", as written
  // As written, not validated: RFC 4566 allows a host name here and nothing routes media to it.
  std::string address;
  size_t line = 0;  // index into SessionDescription::lines()
};

// c=IN IP4|IP6 <address>[/ttl[/count]], and the address part of a=rtcp.
struct Connection {
  IpFamily family = IpFamily::kIpv4;
  std::string address;           // an IP literal of `family`, as written
  bool is_zero_address = false;  // 0.0.0.0 or :: (RFC 2543 hold, or an ICE placeholder)
  size_t line = 0;               // index of the c= (or a=rtcp) line in lines()
};

// a=rtcp:<port> [IN IP4|IP6 <address>] (RFC 3605).
struct RtcpAttribute {
  uint16_t port = 0;
  std::optional<Connection> connection;
  size_t line = 0;
};

struct TransportAddress {
  std::string ip;
  uint16_t port = 0;
  bool operator==(const TransportAddress&) const = default;
};

// One m= section: the m= line and the lines up to the next m= line.
struct MediaDescription {
  size_t index = 0;          // 0-based position among the m= lines
  std::string media_type;    // "audio", "video", "image", ...
  uint16_t port = 0;         // 0: stream disabled (offer) or rejected (answer)
  uint32_t port_count = 1;   // from "<port>/<count>"; 1 when absent
  std::string proto;         // "RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF", ...
  std::string formats;       // the rest of the m= line as written, e.g. "0 8 101"
  std::optional<Connection> connection;  // media-level c= only; see EffectiveConnection()
  std::optional<RtcpAttribute> rtcp;
  bool rtcp_mux = false;
  Direction direction = Direction::kUnspecified;  // own attribute only; see EffectiveDirection()
  bool has_ice_attributes = false;                // own a=candidate / a=ice-* lines
  std::optional<std::string> mid;
  // The first a=ssrc (RFC 5576) of the section: the stream's primary SSRC (a=ssrc-group lists it
  // first too).
  std::optional<uint32_t> ssrc;
  size_t first_line = 0;  // index of the m= line in lines()
  size_t end_line = 0;    // one past the section's last line
};

}  // namespace latchkey::control::sdp
