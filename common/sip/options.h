#pragma once
// SIP OPTIONS keepalives (RFC 3261 sections 8.1.1 and 11), as a registrar's side sends them to NATed
// contacts to keep the NAT mapping open, and the few parts of the answer needed to match it to its
// transaction. Both run once per keepalive (tens of thousands a second per worker), so neither
// allocates on its normal path: WriteOptions writes into the caller's buffer, ParseResponse returns
// views into the datagram (it allocates only to build an error message).
#include <cstddef>
#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace latchkey::sip {

// One out-of-dialog OPTIONS request. The views must stay valid during WriteOptions only.
struct OptionsRequest {
  absl::string_view request_uri;  // the binding's Contact URI, e.g. "sip:alice@192.168.1.20:5060;transport=udp" (no <>)
  absl::string_view to_uri;       // To header URI (the binding's contact URI as well)
  absl::string_view from_uri;     // e.g. "sip:keepalive@203.0.113.1"
  absl::string_view from_tag;
  absl::string_view call_id;
  absl::string_view branch;       // complete branch value, must start with "z9hG4bK"
  absl::string_view via_host;     // sent-by host: IPv4, bracketed IPv6 "[2001:db8::1]", or a name
  uint16_t via_port = 5060;
  absl::string_view transport = "UDP";
  uint32_t cseq = 1;
  absl::string_view user_agent;   // omitted when empty
};

// Writes the request into `out` with CRLF line ends:
//   OPTIONS <request_uri> SIP/2.0
//   Via: SIP/2.0/<transport> <via_host>:<via_port>;branch=<branch>;rport
//   Max-Forwards: 70
//   From: <<from_uri>>;tag=<from_tag>
//   To: <<to_uri>>
//   Call-ID: <call_id>
//   CSeq: <cseq> OPTIONS
//   User-Agent: <user_agent>        (only when not empty)
//   Content-Length: 0
//   (empty line)
// From and To use the <> form because a contact URI's ";transport=udp" would otherwise read as a
// header parameter. An IPv6 via_host written without brackets gets them.
// Returns the bytes written, or 0 if the request does not fit in `capacity` or cannot be written
// correctly: an empty required field (all but user_agent), via_port 0, a branch without the
// "z9hG4bK" magic cookie, or a CR, LF or NUL in any field (which would inject header lines). On 0
// the contents of `out` are unspecified.
size_t WriteOptions(const OptionsRequest& request, char* out, size_t capacity);

// The parts of a SIP response a keepalive sender needs to match it to its transaction. Views into
// the datagram given to ParseResponse.
struct ResponseSummary {
  int status_code = 0;            // 100..699
  absl::string_view branch;       // branch parameter of the top-most Via (first Via header, first value if comma-separated)
  absl::string_view call_id;
  uint32_t cseq = 0;
  absl::string_view cseq_method;  // e.g. "OPTIONS"
};

// Parses a SIP response datagram: status line "SIP/2.0 NNN reason", then header lines up to the empty
// line (a body after it is ignored). Header names are case-insensitive, "v" and "i" are the compact
// forms of Via and Call-ID, whitespace may surround ':', and a line starting with a space or tab
// continues the previous header (RFC 3261 folding). Lines end in CRLF; a bare LF is accepted too.
//
// Checked, each failing with INVALID_ARGUMENT naming the line or header: the status line (version
// "SIP/2.0" in any case, a three-digit code 100-699, a space before the reason); every header line
// has a token name and ':'; the header section ends with an empty line (so a truncated datagram is
// an error); the top Via is "SIP/2.0/<transport> <host>[:<port>]" with well-formed parameters and a
// non-empty branch; Call-ID is one non-empty word; CSeq is "<number> <method>" with the number below
// 2^32; Call-ID and CSeq appear once. Other headers are not looked at beyond their name.
//
// Untrusted input: no read outside `datagram`, work linear in its size, no allocation but the error.
absl::StatusOr<ResponseSummary> ParseResponse(absl::string_view datagram);

}  // namespace latchkey::sip
