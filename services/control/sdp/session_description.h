#pragma once
// An SDP body (RFC 4566) as the control plane needs it: per media stream the address and ports,
// direction, RTCP and ICE details; plus every original line, so that a rewrite (sdp_rewriter.h)
// changes only the lines it must and copies the rest byte-for-byte.
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/control/sdp/sdp_types.h"

namespace latchkey::control::sdp {

// Bounds that keep a broken or hostile body cheap; far above any real offer.
inline constexpr size_t kMaxSdpBytes = 64 * 1024;
inline constexpr size_t kMaxMediaSections = 64;

class SessionDescription {
 public:
  // INVALID_ARGUMENT says what is wrong and on which line. Lenient where real user agents deviate
  // harmlessly (LF-only endings, a trailing empty line, runs of blanks, missing s=/t=, unknown line
  // types); strict where the relay would otherwise have to guess: connection addresses must be IP
  // literals, at most one c= per section, no conflicting direction attributes, an o= line.
  // Zero m= lines are accepted.
  static absl::StatusOr<SessionDescription> Parse(absl::string_view text);

  // ---- As written ----
  const std::vector<SdpLine>& lines() const { return lines_; }
  // Empty line(s) after the last line, verbatim (some stacks end the body with one).
  const std::string& trailing_blank_lines() const { return trailing_blank_lines_; }
  // The first line's terminator; used for lines a rewrite inserts.
  LineEnding line_ending() const { return line_ending_; }
  // Whether the last line had a terminator.
  bool has_final_terminator() const { return has_final_terminator_; }
  // Lines [0, session_end_line()) form the session section; then come the m= sections.
  size_t session_end_line() const { return session_end_line_; }

  const Origin& origin() const { return origin_; }
  const std::optional<Connection>& session_connection() const { return session_connection_; }
  // A session-level direction attribute applies to every media without its own.
  Direction session_direction() const { return session_direction_; }
  bool session_has_ice_attributes() const { return session_has_ice_attributes_; }
  const std::vector<MediaDescription>& media() const { return media_; }

  // ---- Interpreted; a media_index out of range gives nullptr / nullopt / false / kUnspecified ----

  // The media-level c= if present, else the session-level one; nullptr if neither.
  const Connection* EffectiveConnection(size_t media_index) const;
  // The media's own direction attribute, else the session's; kUnspecified if neither.
  Direction DeclaredDirection(size_t media_index) const;
  // What the stream actually does: the declared direction (none: sendrecv), adjusted for an
  // RFC 2543 hold (zero address: the endpoint does not want to receive, so sendrecv becomes sendonly
  // and recvonly inactive); a disabled stream (port 0) is inactive.
  Direction EffectiveDirection(size_t media_index) const;
  // Active stream whose connection address is 0.0.0.0 / :: and is not an ICE placeholder.
  bool IsZeroAddressHold(size_t media_index) const;
  // Zero address with port 9: the "nothing gathered yet" placeholder of trickle ICE (RFC 8840),
  // not a hold. rtpengine draws the same line.
  bool IsIcePlaceholder(size_t media_index) const;
  // The media or the session carries ICE attributes.
  bool UsesIce(size_t media_index) const;
  // Effective connection address and the m= port (0 for a disabled stream); nullopt without c=.
  std::optional<TransportAddress> RtpAddress(size_t media_index) const;
  // a=rtcp port (and its address, else the connection address) if present; otherwise the
  // connection address and RTP port + 1 (RFC 3605 default). rtcp-mux is not applied here: the
  // caller knows whether the offer/answer settled on it. nullopt without an address, or when
  // RTP port + 1 would exceed 65535.
  std::optional<TransportAddress> RtcpAddress(size_t media_index) const;
  // Every distinct connection address that active streams use (c= in effect and a=rtcp
  // addresses), in order of first appearance, zero addresses left out: the input to NAT
  // detection ("is an SDP address private / not the signalling source").
  std::vector<std::string> ConnectionAddresses() const;

 private:
  SessionDescription() = default;
  absl::Status Interpret();
  absl::Status InterpretLine(size_t index, bool* have_origin);
  absl::Status InterpretAttribute(size_t index, MediaDescription* media);

  std::vector<SdpLine> lines_;
  std::string trailing_blank_lines_;
  LineEnding line_ending_ = LineEnding::kCrlf;
  bool has_final_terminator_ = true;
  size_t session_end_line_ = 0;
  Origin origin_;
  std::optional<Connection> session_connection_;
  Direction session_direction_ = Direction::kUnspecified;
  bool session_has_ice_attributes_ = false;
  std::vector<MediaDescription> media_;
};

}  // namespace latchkey::control::sdp
