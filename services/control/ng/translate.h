#pragma once
// What an ng offer or answer asks of Latchkey's session core, decided from its keys and flags alone
// (no I/O). The choices, and why (docs/INTEGRATIONS.md lists them for operators):
// - Latching: `SIP-source-address` -> SIGNALING_SOURCE (media only from the IP the SIP came from),
//   `asymmetric` -> STRICT (send to the SDP's address only), otherwise HEURISTIC, the SDP's address
//   preferred: as rtpengine trusts the SDP by default, because `received-from` is only the previous
//   SIP hop, which behind another proxy is not the phone.
// - The signalling source is `media-address`, else `received-from`'s IP, else the ng client's own
//   address; its port is 0 (ng carries none).
// - `ICE=remove` (and default/optional, or no ICE key) removes ICE: the relay is not an ICE agent,
//   so `ICE=force`/`force-relay` is refused rather than promised.
// - `replace: [origin]` rewrites o=; every c= is rewritten anyway.
// - `address-family` picks the family offered to the other side (offers only).
// - A `transport-protocol` other than the SDP's own, and keys asking for media work (SDES, DTLS,
//   codec/transcode, T.38, repacketize, OSRTP) are refused: the relay forwards media unchanged, so
//   the SDP must not promise otherwise. `record-call` is accepted with a warning (nothing records).
// - rtcp-mux demux/require are passed through unchanged, with a warning: the relay forwards
//   whatever the endpoints negotiate between themselves.
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "latchkey/v1/nat_control.pb.h"
#include "services/control/ng/command.h"

namespace latchkey::control::ng {

struct Translation {
  v1::SessionOptions options;
  v1::SocketAddress signaling_source;
  std::vector<std::string> warnings;
};

// INVALID_ARGUMENT (replied as an error naming the key) for what must be refused. `client_ip`: the
// ng client's address, the signalling source when the request names none.
absl::StatusOr<Translation> Translate(const Command& command, const std::string& client_ip);

}  // namespace latchkey::control::ng
