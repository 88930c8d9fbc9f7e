#pragma once
// Parsers for the value part (after "x=") of the SDP lines the model interprets. Their errors say
// what is wrong with the value; SessionDescription::Parse adds where (line number and excerpt).
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/control/sdp/sdp_types.h"

namespace latchkey::control::sdp {

// "<username> <sess-id> <sess-version> <nettype> <addrtype> <address>". The username may contain
// spaces (seen in the wild); the last five fields are fixed.
absl::StatusOr<Origin> ParseOrigin(absl::string_view value);

// "IN IP4|IP6 <ip>[/ttl[/count]]". Host names are rejected: a relay needs an address.
absl::StatusOr<Connection> ParseConnection(absl::string_view value);

// "<media> <port>[/<count>] <proto> <fmt> ...". Fills the m= fields of the result only. A
// disabled stream (port 0) may omit the formats, as some user agents do when rejecting.
absl::StatusOr<MediaDescription> ParseMediaLine(absl::string_view value);

// The value of a=rtcp (after "rtcp:"): "<port> [IN IP4|IP6 <ip>]".
absl::StatusOr<RtcpAttribute> ParseRtcpAttribute(absl::string_view value);

// "name:value" or a flag "name"; trailing whitespace is ignored.
struct Attribute {
  absl::string_view name;
  absl::string_view value;
  bool has_value = false;
};
Attribute SplitAttribute(absl::string_view value);

// a=sendrecv / sendonly / recvonly / inactive; nullopt for any other attribute.
std::optional<Direction> DirectionOf(const Attribute& attribute);

// The ICE attributes (RFC 8839) that only make sense when the endpoints talk to each other directly.
bool IsIceAttribute(const Attribute& attribute);
bool IsIceAttributeLine(const SdpLine& line);

// "IP4" / "IP6".
absl::string_view AddressTypeName(IpFamily family);

// `text` quoted, escaped and cut to a bounded length, for error messages.
std::string QuoteForError(absl::string_view text);

}  // namespace latchkey::control::sdp
