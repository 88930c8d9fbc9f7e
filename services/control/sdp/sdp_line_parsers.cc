#include "services/control/sdp/sdp_line_parsers.h"

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace latchkey::control::sdp {
namespace {

constexpr size_t kMaxQuotedChars = 48;

// RFC 4566 separates fields with single spaces; runs of spaces or tabs are accepted because some
// user agents emit them and nothing is ambiguous about it.
std::vector<absl::string_view> Fields(absl::string_view value) {
  return absl::StrSplit(value, absl::ByAnyChar(" \t"), absl::SkipEmpty());
}

// The text of `value` from the start of `field` (a view into `value`) to the end.
absl::string_view RestFrom(absl::string_view value, absl::string_view field) {
  return absl::StripTrailingAsciiWhitespace(value.substr(static_cast<size_t>(field.data() - value.data())));
}

bool AllDigits(absl::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Decimal 0-65535, digits only (no sign, no whitespace).
std::optional<uint16_t> ParsePortNumber(absl::string_view text) {
  if (!AllDigits(text) || text.size() > 5) return std::nullopt;
  uint32_t value = 0;
  for (char c : text) value = value * 10 + static_cast<uint32_t>(c - '0');
  if (value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

absl::Status PortError(absl::string_view what, absl::string_view text) {
  return absl::InvalidArgumentError(absl::StrCat(what, " ", QuoteForError(text), " is not a number 0-65535"));
}

absl::StatusOr<IpFamily> ParseNetworkAndAddressType(absl::string_view network_type,
                                                    absl::string_view address_type) {
  if (!absl::EqualsIgnoreCase(network_type, "IN")) {
    return absl::InvalidArgumentError(
        absl::StrCat("network type ", QuoteForError(network_type), " is not IN"));
  }
  if (absl::EqualsIgnoreCase(address_type, "IP4")) return IpFamily::kIpv4;
  if (absl::EqualsIgnoreCase(address_type, "IP6")) return IpFamily::kIpv6;
  return absl::InvalidArgumentError(
      absl::StrCat("address type ", QuoteForError(address_type), " is neither IP4 nor IP6"));
}

bool LooksLikeHostName(absl::string_view text) {
  if (absl::StrContains(text, ':')) return false;
  for (char c : text) {
    if (absl::ascii_isalpha(static_cast<unsigned char>(c))) return true;
  }
  return false;
}

absl::StatusOr<Connection> ParseAddress(IpFamily family, absl::string_view text) {
  const std::optional<IpLiteral> literal = ParseIpLiteral(text);
  if (!literal) {
    if (LooksLikeHostName(text)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "host name ", QuoteForError(text), " is not supported: the relay needs an IP address"));
    }
    return absl::InvalidArgumentError(absl::StrCat(QuoteForError(text), " is not an ",
                                                   family == IpFamily::kIpv4 ? "IPv4" : "IPv6",
                                                   " address"));
  }
  if (literal->family != family) {
    return absl::InvalidArgumentError(absl::StrCat(
        QuoteForError(text), " is an ", literal->family == IpFamily::kIpv4 ? "IPv4" : "IPv6",
        " address but the line says ", AddressTypeName(family)));
  }
  Connection connection;
  connection.family = family;
  connection.address = std::string(text);
  connection.is_zero_address = literal->is_unspecified;
  return connection;
}

}  // namespace

absl::StatusOr<Origin> ParseOrigin(absl::string_view value) {
  const std::vector<absl::string_view> fields = Fields(value);
  if (fields.size() < 6) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected \"<username> <sess-id> <sess-version> IN IP4|IP6 <address>\", got ",
        fields.size(), " field(s)"));
  }
  const size_t n = fields.size();
  const absl::string_view last_username_field = fields[n - 6];
  Origin origin;
  origin.username = std::string(value.substr(
      static_cast<size_t>(fields[0].data() - value.data()),
      static_cast<size_t>(last_username_field.data() + last_username_field.size() - fields[0].data())));
  origin.session_id = std::string(fields[n - 5]);
  origin.session_version = std::string(fields[n - 4]);
  origin.network_type = std::string(fields[n - 3]);
  origin.address_type = std::string(fields[n - 2]);
  origin.address = std::string(fields[n - 1]);
  return origin;
}

absl::StatusOr<Connection> ParseConnection(absl::string_view value) {
  const std::vector<absl::string_view> fields = Fields(value);
  if (fields.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected \"IN IP4|IP6 <address>\", got ", fields.size(), " field(s)"));
  }
  ASSIGN_OR_RETURN(const IpFamily family, ParseNetworkAndAddressType(fields[0], fields[1]));
  // Multicast suffixes: /ttl[/count] for IPv4, /count for IPv6. Checked for shape only; a relay
  // rewrites the line to a unicast address without them.
  const std::vector<absl::string_view> parts = absl::StrSplit(fields[2], '/');
  if (parts.size() > 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("address ", QuoteForError(fields[2]), " has more than two '/' suffixes"));
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    if (!AllDigits(parts[i]) || parts[i].size() > 5) {
      return absl::InvalidArgumentError(absl::StrCat(
          "address suffix ", QuoteForError(parts[i]), " in ", QuoteForError(fields[2]),
          " is not a number"));
    }
  }
  return ParseAddress(family, parts[0]);
}

absl::StatusOr<MediaDescription> ParseMediaLine(absl::string_view value) {
  const std::vector<absl::string_view> fields = Fields(value);
  if (fields.size() < 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "expected \"<media> <port>[/<count>] <proto> <fmt> ...\", got ", fields.size(),
        " field(s)"));
  }
  MediaDescription media;
  media.media_type = std::string(fields[0]);
  const std::vector<absl::string_view> port_parts = absl::StrSplit(fields[1], absl::MaxSplits('/', 1));
  const std::optional<uint16_t> port = ParsePortNumber(port_parts[0]);
  if (!port) return PortError("port", port_parts[0]);
  media.port = *port;
  if (port_parts.size() == 2) {
    const std::optional<uint16_t> count = ParsePortNumber(port_parts[1]);
    if (!count || *count == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "port count ", QuoteForError(port_parts[1]), " is not a number 1-65535"));
    }
    media.port_count = *count;
  }
  media.proto = std::string(fields[2]);
  if (fields.size() > 3) media.formats = std::string(RestFrom(value, fields[3]));
  if (media.formats.empty() && media.port != 0) {
    return absl::InvalidArgumentError("no media formats after the transport protocol");
  }
  return media;
}

absl::StatusOr<RtcpAttribute> ParseRtcpAttribute(absl::string_view value) {
  const std::vector<absl::string_view> fields = Fields(value);
  if (fields.size() != 1 && fields.size() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected \"a=rtcp:<port> [IN IP4|IP6 <address>]\", got ", fields.size(),
                     " field(s)"));
  }
  RtcpAttribute rtcp;
  const std::optional<uint16_t> port = ParsePortNumber(fields[0]);
  if (!port) return PortError("RTCP port", fields[0]);
  rtcp.port = *port;
  if (fields.size() == 4) {
    ASSIGN_OR_RETURN(const IpFamily family, ParseNetworkAndAddressType(fields[1], fields[2]));
    ASSIGN_OR_RETURN(rtcp.connection, ParseAddress(family, fields[3]));
  }
  return rtcp;
}

Attribute SplitAttribute(absl::string_view value) {
  value = absl::StripTrailingAsciiWhitespace(value);
  Attribute attribute;
  const size_t colon = value.find(':');
  if (colon == absl::string_view::npos) {
    attribute.name = value;
    return attribute;
  }
  attribute.name = value.substr(0, colon);
  attribute.value = value.substr(colon + 1);
  attribute.has_value = true;
  return attribute;
}

std::optional<Direction> DirectionOf(const Attribute& attribute) {
  if (attribute.has_value) return std::nullopt;
  if (attribute.name == "sendrecv") return Direction::kSendRecv;
  if (attribute.name == "sendonly") return Direction::kSendOnly;
  if (attribute.name == "recvonly") return Direction::kRecvOnly;
  if (attribute.name == "inactive") return Direction::kInactive;
  return std::nullopt;
}

bool IsIceAttribute(const Attribute& attribute) {
  static constexpr absl::string_view kIceAttributes[] = {
      "candidate", "remote-candidates", "end-of-candidates", "ice-ufrag",
      "ice-pwd",   "ice-options",       "ice-lite",          "ice-mismatch"};
  for (absl::string_view name : kIceAttributes) {
    if (attribute.name == name) return true;
  }
  return false;
}

bool IsIceAttributeLine(const SdpLine& line) {
  return line.type == 'a' && line.text.size() >= 2 &&
         IsIceAttribute(SplitAttribute(absl::string_view(line.text).substr(2)));
}

absl::string_view AddressTypeName(IpFamily family) {
  return family == IpFamily::kIpv4 ? "IP4" : "IP6";
}

std::string QuoteForError(absl::string_view text) {
  const bool cut = text.size() > kMaxQuotedChars;
  return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kMaxQuotedChars)), cut ? "...\"" : "\"");
}

}  // namespace latchkey::control::sdp
