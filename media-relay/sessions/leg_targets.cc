#include "media-relay/sessions/leg_targets.h"

#include "common/net/socket_address.h"
#include "common/time/proto_time.h"

namespace latchkey::relay {
namespace {

constexpr absl::Duration kDefaultMediaTimeout = absl::Seconds(60);
constexpr absl::Duration kHoldMediaTimeout = absl::Hours(1);

std::optional<net::SocketAddress> Usable(const v1::SocketAddress& address) {
  auto ip = net::IpAddress::Parse(address.ip());
  if (!ip.ok() || ip->IsUnspecified() || address.port() == 0 || address.port() > 65535) return std::nullopt;
  return net::SocketAddress{*ip, static_cast<uint16_t>(address.port())};
}

}  // namespace

LegTarget TargetFor(const v1::Leg& leg, uint32_t media_index, const RelayAddressing& addressing) {
  LegTarget out;
  out.policy.mode = leg.latching_mode() == v1::LATCHING_MODE_UNSPECIFIED ? v1::LATCHING_MODE_HEURISTIC
                                                                         : leg.latching_mode();
  out.relay_chain = leg.relay_chain();
  if (auto ip = net::IpAddress::Parse(leg.signaling_source().ip()); ip.ok()) out.target.signaling_ip = *ip;
  for (const v1::RemoteMedia& media : leg.remote()) {
    if (media.media_index() != media_index) continue;
    out.rtcp_mux = media.rtcp_mux();
    out.target.sending =
        media.direction() != v1::MEDIA_DIRECTION_RECVONLY && media.direction() != v1::MEDIA_DIRECTION_INACTIVE;
    out.target.expected_ssrc = media.ssrc();
    out.target.sdp = Usable(media.sdp_rtp());
    if (out.target.sdp) {
      out.target.sdp_sendable = SdpSendable(*out.target.sdp, addressing.own_ips, addressing.port_min,
                                            addressing.port_max, addressing.allow_loopback);
    }
    if (auto rtcp = Usable(media.sdp_rtcp());
        rtcp && SdpSendable(*rtcp, addressing.own_ips, addressing.port_min, addressing.port_max,
                            addressing.allow_loopback)) {
      out.sdp_rtcp = rtcp;
    }
  }
  return out;
}

LegTargets TargetsFor(const v1::Session& session, uint32_t media_index, const RelayAddressing& addressing) {
  LegTargets out{TargetFor(session.caller(), media_index, addressing),
                 TargetFor(session.callee(), media_index, addressing)};
  bool answered = false;
  for (const v1::RemoteMedia& media : session.callee().remote()) answered |= media.media_index() == media_index;
  // Nobody legitimate sends before the answer: the caller learns its leg's port from it, and the
  // callee sends only once it has answered (RFC 3264; its first packets may beat the answer to the
  // relay by a few milliseconds and are dropped). The ringing time is no window for a sprayer.
  out.caller.target.open = answered;
  out.callee.target.open = answered;
  if (!answered) out.callee.rtcp_mux = out.caller.rtcp_mux;  // offered as the caller's
  return out;
}

absl::Duration MediaTimeoutFor(const v1::Session& session) {
  const absl::Duration configured = DurationOr(session.options().has_media_timeout(), session.options().media_timeout(),
                                               kDefaultMediaTimeout);
  for (const v1::Leg* leg : {&session.caller(), &session.callee()}) {
    for (const v1::RemoteMedia& media : leg->remote()) {
      if (media.direction() == v1::MEDIA_DIRECTION_SENDONLY || media.direction() == v1::MEDIA_DIRECTION_RECVONLY ||
          media.direction() == v1::MEDIA_DIRECTION_INACTIVE) {
        return std::max(configured, kHoldMediaTimeout);
      }
    }
  }
  return configured;
}

SessionTimeouts TimeoutsFor(const v1::Session& session, absl::Time created_at) {
  SessionTimeouts out;
  out.media = MediaTimeoutFor(session);
  if (session.options().has_final_timeout()) out.final_deadline = created_at + FromProto(session.options().final_timeout());
  return out;
}

}  // namespace latchkey::relay
