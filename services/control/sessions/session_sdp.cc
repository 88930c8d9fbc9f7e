#include "services/control/sessions/session_sdp.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/net/socket_address.h"
#include "common/status_macros.h"
#include "common/validation.h"
#include "services/control/sdp/sdp_rewriter.h"

namespace latchkey::control {
namespace {

v1::MediaDirection DirectionToProto(sdp::Direction direction) {
  switch (direction) {
    case sdp::Direction::kSendRecv: return v1::MEDIA_DIRECTION_SENDRECV;
    case sdp::Direction::kSendOnly: return v1::MEDIA_DIRECTION_SENDONLY;
    case sdp::Direction::kRecvOnly: return v1::MEDIA_DIRECTION_RECVONLY;
    case sdp::Direction::kInactive: return v1::MEDIA_DIRECTION_INACTIVE;
    case sdp::Direction::kUnspecified: break;
  }
  return v1::MEDIA_DIRECTION_SENDRECV;
}

const v1::Leg& OtherLeg(const v1::Session& session, v1::Side side) {
  return side == v1::SIDE_CALLER ? session.callee() : session.caller();
}

}  // namespace

v1::Leg* LegOf(v1::Session& session, v1::Side side) {
  return side == v1::SIDE_CALLER ? session.mutable_caller() : session.mutable_callee();
}

absl::Status CheckAllocateRequest(const v1::AllocateSessionRequest& request) {
  RETURN_IF_ERROR(CheckToken("call_id", request.call_id(), 256));
  RETURN_IF_ERROR(CheckToken("from_tag", request.from_tag(), 128));
  if (!request.branch().empty()) RETURN_IF_ERROR(CheckToken("branch", request.branch(), 128));
  const v1::SessionOptions& opts = request.options();
  RETURN_IF_ERROR(CheckEnum("options.latching_mode", opts.latching_mode(), v1::LatchingMode_IsValid, true));
  RETURN_IF_ERROR(CheckEnum("options.ice", opts.ice(), v1::IceHandling_IsValid, true));
  RETURN_IF_ERROR(CheckEnum("options.callee_ip_family", opts.callee_ip_family(), v1::IpFamily_IsValid, true));
  if (opts.has_media_timeout()) {
    RETURN_IF_ERROR(CheckDuration("options.media_timeout", true, opts.media_timeout(), absl::Seconds(1), absl::Hours(24))
                        .status());
  }
  if (opts.has_final_timeout()) {
    RETURN_IF_ERROR(CheckDuration("options.final_timeout", true, opts.final_timeout(), absl::Seconds(1), absl::Hours(24 * 7))
                        .status());
  }
  return absl::OkStatus();
}

absl::StatusOr<sdp::SessionDescription> DescribeLeg(v1::Session& session, v1::Side side, const std::string& sdp_text,
                                                    const v1::SocketAddress& signaling_source,
                                                    const NatDetector& detector, const RelayAddressCheck& is_relay) {
  // Port 0: the signalling peer only knows the IP (ng); the IP is all latching uses.
  v1::SocketAddress checked = signaling_source;
  if (checked.port() == 0) checked.set_port(1);
  ASSIGN_OR_RETURN(net::SocketAddress source, net::FromProto(checked, "signaling_source"));
  source.port = static_cast<uint16_t>(signaling_source.port());
  if (sdp_text.empty()) return absl::InvalidArgumentError("sdp: required");
  auto description = sdp::SessionDescription::Parse(sdp_text);
  if (!description.ok()) return absl::InvalidArgumentError(absl::StrCat("sdp: ", description.status().message()));
  const size_t streams = description->media().size();
  if (streams == 0) return absl::InvalidArgumentError("sdp: has no m= line");
  if (streams > kMaxStreams) {
    return absl::InvalidArgumentError(absl::StrCat("sdp: ", streams, " m= lines, at most ", kMaxStreams, " are relayed"));
  }
  const size_t known = std::max(session.caller().relay_size(), session.callee().relay_size());
  if (streams < known) {
    return absl::InvalidArgumentError(absl::StrCat("sdp: ", streams, " m= lines but the session has ", known,
                                                   " (RFC 3264: streams are disabled with port 0, never removed)"));
  }

  NatInput input;
  input.source = source;
  for (const std::string& address : description->ConnectionAddresses()) {
    if (auto ip = net::IpAddress::Parse(address); ip.ok()) input.sdp_addresses.push_back(*ip);
  }
  v1::Leg* leg = LegOf(session, side);
  *leg->mutable_signaling_source() = signaling_source;
  *leg->mutable_verdict() = detector.Evaluate(input);
  v1::LatchingMode mode = session.options().latching_mode();
  if (mode == v1::LATCHING_MODE_UNSPECIFIED) {
    // Behind NAT the SDP address is a guess; the signalling source IP is what the NAT exposes.
    mode = leg->verdict().state() == v1::NAT_STATE_BEHIND_NAT ? v1::LATCHING_MODE_SIGNALING_SOURCE
                                                              : v1::LATCHING_MODE_HEURISTIC;
  }
  leg->set_latching_mode(mode);
  leg->clear_remote();
  leg->set_relay_chain(false);
  for (size_t i = 0; i < streams; ++i) {
    const sdp::MediaDescription& media = description->media()[i];
    v1::RemoteMedia* remote = leg->add_remote();
    remote->set_media_index(static_cast<uint32_t>(i));
    remote->set_media_type(media.media_type);
    if (auto rtp = description->RtpAddress(i)) {
      remote->mutable_sdp_rtp()->set_ip(rtp->ip);
      remote->mutable_sdp_rtp()->set_port(rtp->port);
      // This side is another relay's port: the relays accept a peer's range only on a leg marked so.
      if (is_relay && is_relay(rtp->ip, rtp->port)) leg->set_relay_chain(true);
    }
    if (auto rtcp = description->RtcpAddress(i)) {
      remote->mutable_sdp_rtcp()->set_ip(rtcp->ip);
      remote->mutable_sdp_rtcp()->set_port(rtcp->port);
    }
    remote->set_rtcp_mux(media.rtcp_mux);
    remote->set_direction(DirectionToProto(description->EffectiveDirection(i)));
    remote->set_ssrc(media.ssrc.value_or(0));
  }
  return description;
}

absl::StatusOr<std::string> RewriteForOtherSide(const v1::Session& session, v1::Side side,
                                                const sdp::SessionDescription& description) {
  const v1::Leg& other = OtherLeg(session, side);
  sdp::RewriteOptions options;
  options.remove_ice = session.options().ice() != v1::ICE_HANDLING_KEEP;
  options.rewrite_origin = session.options().rewrite_origin();
  for (const v1::RelayEndpoint& endpoint : other.relay()) {
    if (options.relay_ip.empty()) options.relay_ip = endpoint.rtp().ip();
    options.streams.push_back({endpoint.media_index(), endpoint.rtp().ip(), static_cast<uint16_t>(endpoint.rtp().port()),
                               static_cast<uint16_t>(endpoint.rtcp().port())});
  }
  auto rewritten = sdp::Rewrite(description, options);
  if (!rewritten.ok()) return absl::InvalidArgumentError(absl::StrCat("sdp: ", rewritten.status().message()));
  return rewritten;
}

uint32_t CalleeFamily(const v1::Session& session) {
  const v1::IpFamily asked = session.options().callee_ip_family();
  if (asked != v1::IP_FAMILY_UNSPECIFIED) return asked == v1::IP_FAMILY_IPV6 ? 6 : 4;
  for (const v1::RemoteMedia& media : session.caller().remote()) {
    if (auto ip = net::IpAddress::Parse(media.sdp_rtp().ip()); ip.ok()) return ip->is_v6() ? 6 : 4;
  }
  return 4;
}

}  // namespace latchkey::control
