#include "services/control/sdp/session_description.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "services/control/sdp/sdp_line_parsers.h"

namespace latchkey::control::sdp {
namespace {

absl::Status LineError(size_t index, absl::string_view text, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("SDP line ", index + 1, " ", QuoteForError(text), ": ", what));
}

struct SplitBody {
  std::vector<SdpLine> lines;
  std::string trailing_blank_lines;
};

// Splits at LF and records each line's own terminator (CRLF or LF), so a rewrite reproduces it.
absl::StatusOr<SplitBody> SplitLines(absl::string_view text) {
  SplitBody body;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t newline = text.find('\n', pos);
    absl::string_view content;
    std::string terminator;
    if (newline == absl::string_view::npos) {
      content = text.substr(pos);
      pos = text.size();
    } else {
      content = text.substr(pos, newline - pos);
      terminator = "\n";
      pos = newline + 1;
      if (!content.empty() && content.back() == '\r') {
        content.remove_suffix(1);
        terminator = "\r\n";
      }
    }
    if (content.find('\r') != absl::string_view::npos) {
      return LineError(body.lines.size(), content, "carriage return not followed by a line feed");
    }
    body.lines.push_back(
        SdpLine{content.empty() ? '\0' : content[0], std::string(content), std::move(terminator)});
  }
  while (!body.lines.empty() && body.lines.back().text.empty()) {
    body.trailing_blank_lines.insert(0, body.lines.back().terminator);
    body.lines.pop_back();
  }
  return body;
}

}  // namespace

absl::StatusOr<SessionDescription> SessionDescription::Parse(absl::string_view text) {
  if (text.empty()) return absl::InvalidArgumentError("SDP is empty");
  if (text.size() > kMaxSdpBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("SDP is ", text.size(), " bytes; the limit is ", kMaxSdpBytes));
  }
  if (const size_t nul = text.find('\0'); nul != absl::string_view::npos) {
    const size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + nul, '\n'));
    return absl::InvalidArgumentError(
        absl::StrCat("SDP contains a NUL byte at offset ", nul, " (line ", line, ")"));
  }
  ASSIGN_OR_RETURN(SplitBody body, SplitLines(text));
  if (body.lines.empty()) return absl::InvalidArgumentError("SDP has only empty lines");

  SessionDescription sdp;
  sdp.lines_ = std::move(body.lines);
  sdp.trailing_blank_lines_ = std::move(body.trailing_blank_lines);
  sdp.line_ending_ = sdp.lines_.front().terminator == "\n" ? LineEnding::kLf : LineEnding::kCrlf;
  sdp.has_final_terminator_ = !sdp.lines_.back().terminator.empty();
  RETURN_IF_ERROR(sdp.Interpret());
  return sdp;
}

absl::Status SessionDescription::Interpret() {
  const absl::string_view first = lines_.front().text;
  if (absl::StripTrailingAsciiWhitespace(first) != "v=0") {
    return LineError(0, first, "an SDP must start with v=0");
  }
  session_end_line_ = lines_.size();
  bool have_origin = false;
  for (size_t i = 1; i < lines_.size(); ++i) RETURN_IF_ERROR(InterpretLine(i, &have_origin));
  if (!have_origin) return absl::InvalidArgumentError("SDP has no o= line");
  if (!media_.empty()) media_.back().end_line = lines_.size();
  return absl::OkStatus();
}

absl::Status SessionDescription::InterpretLine(size_t index, bool* have_origin) {
  const absl::string_view text = lines_[index].text;
  if (text.empty()) return LineError(index, text, "empty line inside the SDP");
  if (text.size() < 2 || text[1] != '=' || !absl::ascii_isalpha(static_cast<unsigned char>(text[0]))) {
    return LineError(index, text, "expected <letter>=<value>");
  }
  const absl::string_view value = text.substr(2);
  MediaDescription* media = media_.empty() ? nullptr : &media_.back();
  switch (text[0]) {
    case 'v':
      return LineError(index, text, "v= may only be the first line");
    case 'o': {
      if (media != nullptr) return LineError(index, text, "o= must come before the first m= line");
      if (*have_origin) return LineError(index, text, "second o= line");
      absl::StatusOr<Origin> origin = ParseOrigin(value);
      if (!origin.ok()) return LineError(index, text, origin.status().message());
      origin_ = *std::move(origin);
      origin_.line = index;
      *have_origin = true;
      return absl::OkStatus();
    }
    case 'c': {
      absl::StatusOr<Connection> connection = ParseConnection(value);
      if (!connection.ok()) return LineError(index, text, connection.status().message());
      connection->line = index;
      std::optional<Connection>& slot = media != nullptr ? media->connection : session_connection_;
      if (slot) {
        // Several c= lines only serve layered multicast, which a relay does not do.
        return LineError(index, text,
                         media != nullptr ? absl::StrCat("second c= line in media section ", media->index)
                                          : std::string("second c= line in the session section"));
      }
      slot = *std::move(connection);
      return absl::OkStatus();
    }
    case 'm': {
      if (media_.size() == kMaxMediaSections) {
        return LineError(index, text, absl::StrCat("more than ", kMaxMediaSections, " m= lines"));
      }
      absl::StatusOr<MediaDescription> parsed = ParseMediaLine(value);
      if (!parsed.ok()) return LineError(index, text, parsed.status().message());
      if (media != nullptr) {
        media->end_line = index;
      } else {
        session_end_line_ = index;
      }
      parsed->index = media_.size();
      parsed->first_line = index;
      media_.push_back(*std::move(parsed));
      return absl::OkStatus();
    }
    case 'a':
      return InterpretAttribute(index, media);
    default:
      return absl::OkStatus();  // s=, t=, b=, i=, k=, ... and unknown types are carried verbatim
  }
}

absl::Status SessionDescription::InterpretAttribute(size_t index, MediaDescription* media) {
  const absl::string_view text = lines_[index].text;
  const Attribute attribute = SplitAttribute(text.substr(2));
  if (const std::optional<Direction> direction = DirectionOf(attribute)) {
    Direction& slot = media != nullptr ? media->direction : session_direction_;
    if (slot != Direction::kUnspecified && slot != *direction) {
      return LineError(index, text,
                       absl::StrCat("conflicts with the earlier a=", DirectionName(slot)));
    }
    slot = *direction;
    return absl::OkStatus();
  }
  if (IsIceAttribute(attribute)) {
    (media != nullptr ? media->has_ice_attributes : session_has_ice_attributes_) = true;
    return absl::OkStatus();
  }
  // rtcp (RFC 3605), rtcp-mux (RFC 5761) and mid (RFC 5888) are media-level attributes; at session
  // level they mean nothing and are carried verbatim.
  if (media == nullptr) return absl::OkStatus();
  if (attribute.name == "rtcp") {
    if (media->rtcp) return LineError(index, text, "second a=rtcp line in the media section");
    absl::StatusOr<RtcpAttribute> rtcp = ParseRtcpAttribute(attribute.value);
    if (!rtcp.ok()) return LineError(index, text, rtcp.status().message());
    rtcp->line = index;
    if (rtcp->connection) rtcp->connection->line = index;
    media->rtcp = *std::move(rtcp);
  } else if (attribute.name == "rtcp-mux" && !attribute.has_value) {
    media->rtcp_mux = true;
  } else if (attribute.name == "mid" && attribute.has_value) {
    media->mid = std::string(attribute.value);
  } else if (attribute.name == "ssrc") {
    // a=ssrc:<ssrc-id> <attribute>[:<value>]
    uint32_t ssrc = 0;
    const absl::string_view id = attribute.value.substr(0, attribute.value.find(' '));
    if (!absl::SimpleAtoi(id, &ssrc) || id.empty() || id[0] == '-' || id[0] == '+') {
      return LineError(index, text, "a=ssrc needs an SSRC from 0 to 4294967295");
    }
    if (!media->ssrc) media->ssrc = ssrc;
  }
  return absl::OkStatus();
}

const Connection* SessionDescription::EffectiveConnection(size_t media_index) const {
  if (media_index >= media_.size()) return nullptr;
  if (media_[media_index].connection) return &*media_[media_index].connection;
  if (session_connection_) return &*session_connection_;
  return nullptr;
}

Direction SessionDescription::DeclaredDirection(size_t media_index) const {
  if (media_index >= media_.size()) return Direction::kUnspecified;
  const Direction own = media_[media_index].direction;
  return own != Direction::kUnspecified ? own : session_direction_;
}

Direction SessionDescription::EffectiveDirection(size_t media_index) const {
  if (media_index >= media_.size()) return Direction::kUnspecified;
  if (media_[media_index].port == 0) return Direction::kInactive;
  Direction direction = DeclaredDirection(media_index);
  if (direction == Direction::kUnspecified) direction = Direction::kSendRecv;
  if (IsZeroAddressHold(media_index)) {
    if (direction == Direction::kSendRecv) return Direction::kSendOnly;
    if (direction == Direction::kRecvOnly) return Direction::kInactive;
  }
  return direction;
}

bool SessionDescription::IsZeroAddressHold(size_t media_index) const {
  const Connection* connection = EffectiveConnection(media_index);
  return connection != nullptr && connection->is_zero_address && media_[media_index].port != 0 &&
         !IsIcePlaceholder(media_index);
}

bool SessionDescription::IsIcePlaceholder(size_t media_index) const {
  const Connection* connection = EffectiveConnection(media_index);
  return connection != nullptr && connection->is_zero_address && media_[media_index].port == 9;
}

bool SessionDescription::UsesIce(size_t media_index) const {
  return media_index < media_.size() &&
         (media_[media_index].has_ice_attributes || session_has_ice_attributes_);
}

std::optional<TransportAddress> SessionDescription::RtpAddress(size_t media_index) const {
  const Connection* connection = EffectiveConnection(media_index);
  if (connection == nullptr) return std::nullopt;
  return TransportAddress{connection->address, media_[media_index].port};
}

std::optional<TransportAddress> SessionDescription::RtcpAddress(size_t media_index) const {
  if (media_index >= media_.size()) return std::nullopt;
  const MediaDescription& media = media_[media_index];
  const Connection* connection = EffectiveConnection(media_index);
  if (media.rtcp) {
    if (media.rtcp->connection) return TransportAddress{media.rtcp->connection->address, media.rtcp->port};
    if (connection == nullptr) return std::nullopt;
    return TransportAddress{connection->address, media.rtcp->port};
  }
  if (connection == nullptr || media.port == 65535) return std::nullopt;
  const uint16_t port = media.port == 0 ? 0 : static_cast<uint16_t>(media.port + 1);
  return TransportAddress{connection->address, port};
}

std::vector<std::string> SessionDescription::ConnectionAddresses() const {
  std::vector<std::string> addresses;
  auto add = [&addresses](const Connection* connection) {
    if (connection == nullptr || connection->is_zero_address) return;
    if (std::find(addresses.begin(), addresses.end(), connection->address) == addresses.end()) {
      addresses.push_back(connection->address);
    }
  };
  for (const MediaDescription& media : media_) {
    if (media.port == 0) continue;
    add(EffectiveConnection(media.index));
    if (media.rtcp && media.rtcp->connection) add(&*media.rtcp->connection);
  }
  return addresses;
}

}  // namespace latchkey::control::sdp
