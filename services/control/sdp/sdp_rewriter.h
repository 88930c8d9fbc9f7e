#pragma once
// Rewrites an SDP so that media flows through a relay: connection addresses become the relay's and
// each active m= port the relay's port for that stream. Every line without a reason to change is
// copied byte-for-byte (codecs, a=crypto, a=fingerprint, b=, a=ssrc, direction attributes, ...):
// the relay is transparent to everything but transport addresses.
//
// Rules:
//  - Session-level c= becomes relay_ip; every media-level c= of an active stream its stream's IP.
//    An active stream with no c= in effect (or whose stream IP differs from relay_ip) gets a c=
//    line of its own, inserted after its m= line (after i= if present, the RFC 4566 order).
//  - Zero-address c= lines (0.0.0.0, ::) are kept, as rtpengine does: for the other side an
//    RFC 2543 hold stays a hold. The m= port is still the relay's. Exception: with port 9 the zero
//    address is a trickle-ICE placeholder (RFC 8840), not a hold, and is rewritten.
//  - m= port becomes the stream's rtp_port; a "/<count>" is dropped (one relay port per stream).
//  - a=rtcp gets the stream's rtcp_port, and the stream's IP if it carried an address (even a zero
//    one: RTCP keeps flowing on hold). Without a=rtcp, "a=rtcp:<rtcp_port>" is appended to the
//    section when the peer would otherwise assume a different port (RTP + 1, or RTP with rtcp-mux).
//  - Disabled streams (port 0) are copied unchanged, ICE lines included.
//  - Direction attributes and a=rtcp-mux are kept; the caller chooses rtcp_port == rtp_port for mux.
//  - Line terminators, the final terminator and trailing empty lines are preserved; inserted lines
//    use the body's line ending.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/control/sdp/session_description.h"

namespace latchkey::control::sdp {

struct StreamTarget {
  uint32_t media_index = 0;  // 0-based m= line index
  std::string rtp_ip;        // relay IP for this stream; empty: RewriteOptions::relay_ip
  uint16_t rtp_port = 0;
  uint16_t rtcp_port = 0;
};

struct RewriteOptions {
  std::string relay_ip;               // IPv4 or IPv6 literal; decides "IN IP4" / "IN IP6"
  std::vector<StreamTarget> streams;  // one per active m= line; targets for port-0 lines are ignored
  // Drop a=candidate, a=remote-candidates, a=end-of-candidates, a=ice-ufrag, a=ice-pwd,
  // a=ice-options, a=ice-lite, a=ice-mismatch so both endpoints use the relay address.
  bool remove_ice = true;
  bool rewrite_origin = false;  // also put relay_ip into o=
};

// INVALID_ARGUMENT (naming the media index) if an active m= line has no target, a target names a
// media index that does not exist or appears twice, an address is not a usable IP literal, or a port
// is 0. Also INVALID_ARGUMENT if the result would exceed kMaxSdpBytes, which no parser would accept.
absl::StatusOr<std::string> Rewrite(const SessionDescription& sdp, const RewriteOptions& options);

}  // namespace latchkey::control::sdp
