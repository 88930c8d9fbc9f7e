#pragma once
// What an SDP body means for a session, without I/O: the request checks, one side's SDP applied to
// its leg (remote media, NAT verdict, latching mode), and the SDP rewritten for the other side so
// that media goes through the relay.
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "latchkey/v1/nat_control.pb.h"
#include "services/control/nat/nat_detector.h"
#include "services/control/sdp/session_description.h"

namespace latchkey::control {

inline constexpr uint32_t kMaxStreams = 16;

// Whether an address lies in a relay worker's media range (a call through two PBXes on this fleet).
using RelayAddressCheck = std::function<bool(const std::string& ip, uint32_t port)>;

// INVALID_ARGUMENT naming the first bad field of a new session's identity and options.
absl::Status CheckAllocateRequest(const v1::AllocateSessionRequest& request);

// Applies new SDP from `side` to that leg of `session`; returns the parsed SDP for the rewrite.
// INVALID_ARGUMENT naming sdp or signaling_source.
absl::StatusOr<sdp::SessionDescription> DescribeLeg(v1::Session& session, v1::Side side, const std::string& sdp_text,
                                                    const v1::SocketAddress& signaling_source,
                                                    const NatDetector& detector, const RelayAddressCheck& is_relay);

// The SDP from `side`, rewritten for the other side: the relay ports the other side sends to.
absl::StatusOr<std::string> RewriteForOtherSide(const v1::Session& session, v1::Side side,
                                                const sdp::SessionDescription& description);

// The IP family (4 or 6) the callee leg is offered: the one asked for, else the caller's.
uint32_t CalleeFamily(const v1::Session& session);

v1::Leg* LegOf(v1::Session& session, v1::Side side);

}  // namespace latchkey::control
