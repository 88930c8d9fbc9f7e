#pragma once
// Turns control's description of a session (remote media per leg from SDP, signalling source,
// latching mode, options) into what the packet engine needs per stream and leg.
#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "common/net/ip_address.h"
#include "latchkey/v1/nat_control.pb.h"
#include "media-relay/engine/relay_stream.h"

namespace latchkey::relay {

struct RelayAddressing {
  std::vector<net::IpAddress> own_ips;  // bind and advertised addresses: never a media destination
  uint16_t port_min = 0;
  uint16_t port_max = 0;
  // Loopback SDP addresses are sendable only when the relay itself serves loopback (local runs,
  // tests): a relay on a real interface must not send into 127.0.0.0/8 because an SDP says so.
  bool allow_loopback = false;
};

LegTarget TargetFor(const v1::Leg& leg, uint32_t media_index, const RelayAddressing& addressing);

struct LegTargets {
  LegTarget caller, callee;
};
// Both legs of stream `media_index`, with what one leg's target takes from the other: both legs are
// open only once the callee answered (LatchTarget::open), and an unanswered callee leg offers the
// caller's rtcp-mux.
LegTargets TargetsFor(const v1::Session& session, uint32_t media_index, const RelayAddressing& addressing);

// The session's media timeout; on hold (a stream sendonly, recvonly or inactive) one hour, since
// silence is then expected.
absl::Duration MediaTimeoutFor(const v1::Session& session);
// The media timeout, and the final deadline: `created_at` (the relay's own clock) + the session's
// final timeout, if control set one.
SessionTimeouts TimeoutsFor(const v1::Session& session, absl::Time created_at);

}  // namespace latchkey::relay
