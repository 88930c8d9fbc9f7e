#include "services/control/sdp/sdp_rewriter.h"

#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "services/control/sdp/ip_literal.h"
#include "services/control/sdp/sdp_line_parsers.h"

namespace latchkey::control::sdp {
namespace {

struct RelayAddress {
  std::string ip;
  IpFamily family = IpFamily::kIpv4;
};

struct ResolvedTarget {
  RelayAddress address;
  uint16_t rtp_port = 0;
  uint16_t rtcp_port = 0;
};

absl::StatusOr<RelayAddress> ResolveAddress(const std::string& ip, absl::string_view what) {
  const std::optional<IpLiteral> literal = ParseIpLiteral(ip);
  if (!literal) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", QuoteForError(ip), " is not an IP address"));
  }
  if (literal->is_unspecified) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", QuoteForError(ip), " is the unspecified address"));
  }
  return RelayAddress{ip, literal->family};
}

// One resolved target per m= line (nullopt for disabled streams).
absl::StatusOr<std::vector<std::optional<ResolvedTarget>>> ResolveTargets(
    const SessionDescription& sdp, const RewriteOptions& options) {
  const size_t media_count = sdp.media().size();
  std::vector<std::optional<ResolvedTarget>> targets(media_count);
  for (const StreamTarget& stream : options.streams) {
    const size_t index = stream.media_index;
    if (index >= media_count) {
      return absl::InvalidArgumentError(absl::StrCat("stream target for media index ", index,
                                                     ", but the SDP has only ", media_count,
                                                     " m= line(s)"));
    }
    if (targets[index]) {
      return absl::InvalidArgumentError(absl::StrCat("two stream targets for media index ", index));
    }
    if (stream.rtp_port == 0 || stream.rtcp_port == 0) {
      return absl::InvalidArgumentError(absl::StrCat("stream target for media index ", index,
                                                     " has port 0 (rtp ", stream.rtp_port,
                                                     ", rtcp ", stream.rtcp_port, ")"));
    }
    const std::string& ip = stream.rtp_ip.empty() ? options.relay_ip : stream.rtp_ip;
    ASSIGN_OR_RETURN(RelayAddress address,
                     ResolveAddress(ip, absl::StrCat("rtp_ip of media index ", index)));
    targets[index] = ResolvedTarget{std::move(address), stream.rtp_port, stream.rtcp_port};
  }
  for (const MediaDescription& media : sdp.media()) {
    if (media.port == 0) {
      targets[media.index].reset();
    } else if (!targets[media.index]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "media index ", media.index, " (m=", QuoteForError(media.media_type), " port ", media.port,
          ") has no stream target"));
    }
  }
  return targets;
}

std::string ConnectionLine(const RelayAddress& address) {
  return absl::StrCat("c=IN ", AddressTypeName(address.family), " ", address.ip);
}

std::string OriginLine(const Origin& origin, const RelayAddress& relay) {
  return absl::StrCat("o=", origin.username, " ", origin.session_id, " ", origin.session_version,
                      " ", origin.network_type, " ", AddressTypeName(relay.family), " ", relay.ip);
}

std::string MediaLine(const MediaDescription& media, uint16_t port) {
  return absl::StrCat("m=", media.media_type, " ", port, " ", media.proto,
                      media.formats.empty() ? "" : " ", media.formats);
}

std::string RtcpLine(const RtcpAttribute& rtcp, const ResolvedTarget& target) {
  if (!rtcp.connection) return absl::StrCat("a=rtcp:", target.rtcp_port);
  return absl::StrCat("a=rtcp:", target.rtcp_port, " IN ", AddressTypeName(target.address.family),
                      " ", target.address.ip);
}

// The RTCP port a peer assumes without a=rtcp: RTP + 1 (RFC 3550), or the RTP port once it sees
// rtcp-mux. If the relay's differs, the SDP has to say so.
bool NeedsRtcpAttribute(const MediaDescription& media, const ResolvedTarget& target) {
  const uint32_t assumed = media.rtcp_mux ? target.rtp_port : target.rtp_port + 1u;
  return assumed != target.rtcp_port;
}

// Collects output lines; inserted lines get their terminator when the whole body is known.
class Output {
 public:
  void Copy(const SdpLine& line) { lines_.push_back({line.text, line.terminator}); }
  void Replace(const SdpLine& line, std::string text) {
    lines_.push_back({std::move(text), line.terminator});
  }
  void Insert(std::string text) { lines_.push_back({std::move(text), ""}); }

  std::string Finish(const SessionDescription& sdp) const {
    const absl::string_view ending = sdp.line_ending() == LineEnding::kLf ? "\n" : "\r\n";
    std::string text;
    for (size_t i = 0; i < lines_.size(); ++i) {
      const OutputLine& line = lines_[i];
      const bool last = i + 1 == lines_.size();
      absl::StrAppend(&text, line.text);
      if (last && !sdp.has_final_terminator()) break;
      // Only the input's last line, or an inserted line, lacks a terminator.
      if (line.terminator.empty()) {
        absl::StrAppend(&text, ending);
      } else {
        absl::StrAppend(&text, line.terminator);
      }
    }
    absl::StrAppend(&text, sdp.trailing_blank_lines());
    return text;
  }

 private:
  struct OutputLine {
    std::string text;
    std::string terminator;
  };
  std::vector<OutputLine> lines_;
};

void RewriteSession(const SessionDescription& sdp, const RewriteOptions& options,
                    const RelayAddress& relay, Output& out) {
  const std::optional<Connection>& connection = sdp.session_connection();
  for (size_t i = 0; i < sdp.session_end_line(); ++i) {
    const SdpLine& line = sdp.lines()[i];
    if (options.rewrite_origin && i == sdp.origin().line) {
      out.Replace(line, OriginLine(sdp.origin(), relay));
    } else if (connection && i == connection->line && !connection->is_zero_address) {
      out.Replace(line, ConnectionLine(relay));
    } else if (!(options.remove_ice && IsIceAttributeLine(line))) {
      out.Copy(line);
    }
  }
}

// Whether the stream needs a c= of its own to point at its target.
bool NeedsOwnConnection(const SessionDescription& sdp, const MediaDescription& media,
                        const ResolvedTarget& target, const RelayAddress& relay) {
  if (media.connection) return false;
  const std::optional<Connection>& session = sdp.session_connection();
  if (!session) return true;
  // An inherited hold stays a hold; an inherited ICE placeholder must become an address.
  if (session->is_zero_address) return sdp.IsIcePlaceholder(media.index);
  return target.address.ip != relay.ip;
}

void RewriteMedia(const SessionDescription& sdp, const MediaDescription& media,
                  const ResolvedTarget& target, const RewriteOptions& options,
                  const RelayAddress& relay, Output& out) {
  const std::vector<SdpLine>& lines = sdp.lines();
  const bool insert_connection = NeedsOwnConnection(sdp, media, target, relay);
  size_t insert_after = media.first_line;
  if (insert_after + 1 < media.end_line && lines[insert_after + 1].type == 'i') ++insert_after;
  const bool keep_zero_connection = sdp.IsZeroAddressHold(media.index);

  for (size_t i = media.first_line; i < media.end_line; ++i) {
    const SdpLine& line = lines[i];
    if (i == media.first_line) {
      out.Replace(line, MediaLine(media, target.rtp_port));
    } else if (media.connection && i == media.connection->line) {
      if (keep_zero_connection) {
        out.Copy(line);
      } else {
        out.Replace(line, ConnectionLine(target.address));
      }
    } else if (media.rtcp && i == media.rtcp->line) {
      out.Replace(line, RtcpLine(*media.rtcp, target));
    } else if (!(options.remove_ice && IsIceAttributeLine(line))) {
      out.Copy(line);
    }
    if (insert_connection && i == insert_after) out.Insert(ConnectionLine(target.address));
  }
  if (!media.rtcp && NeedsRtcpAttribute(media, target)) {
    out.Insert(absl::StrCat("a=rtcp:", target.rtcp_port));
  }
}

}  // namespace

absl::StatusOr<std::string> Rewrite(const SessionDescription& sdp, const RewriteOptions& options) {
  ASSIGN_OR_RETURN(const RelayAddress relay, ResolveAddress(options.relay_ip, "relay_ip"));
  ASSIGN_OR_RETURN(const std::vector<std::optional<ResolvedTarget>> targets,
                   ResolveTargets(sdp, options));
  Output out;
  RewriteSession(sdp, options, relay, out);
  for (const MediaDescription& media : sdp.media()) {
    const std::optional<ResolvedTarget>& target = targets[media.index];
    if (!target) {
      for (size_t i = media.first_line; i < media.end_line; ++i) out.Copy(sdp.lines()[i]);
      continue;
    }
    RewriteMedia(sdp, media, *target, options, relay, out);
  }
  std::string text = out.Finish(sdp);
  if (text.size() > kMaxSdpBytes) {
    return absl::InvalidArgumentError(absl::StrCat("rewritten SDP would be ", text.size(),
                                                   " bytes; the limit is ", kMaxSdpBytes));
  }
  return text;
}

}  // namespace latchkey::control::sdp
