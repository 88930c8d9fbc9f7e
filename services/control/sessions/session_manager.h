#pragma once
// The session RPCs: places each call on a relay worker, keeps its two legs' remote media and relay
// ports, rewrites every SDP so media goes through the relay, and ends sessions on release.
// Holds no lock and no state of its own: it reads a session, makes the relay calls, and writes the
// result only if no other writer (RPC, replica, sweeper) changed the session meanwhile, else applies
// the change again to the newer record (SessionWriter). Parts: request checks and SDP in session_sdp,
// relay calls in relay_sessions, persistence in the SessionStore; worker reports and reconciliation
// in worker_sessions, timeouts in session_sweeper.
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "common/grpc/auth.h"
#include "latchkey/v1/nat_control.pb.h"
#include "services/control/nat/nat_detector.h"
#include "services/control/sessions/relay_sessions.h"
#include "services/control/sessions/session_sdp.h"
#include "services/control/sessions/session_writer.h"
#include "services/control/store/session_store.h"

namespace latchkey::control {

struct SessionManagerOptions {
  absl::Duration media_timeout = absl::Seconds(60);
  absl::Duration final_timeout = absl::Hours(12);
  uint64_t max_sessions_per_pbx = 100'000;
};

class SessionManager {
 public:
  SessionManager(SessionManagerOptions options, SessionStore* store, SessionWriter* writer, RelaySessions* relay,
                 ControlMetrics* metrics, const NatDetector* detector, RelayAddressCheck is_relay_address);

  // A session belongs to the identity that created it: the same Call-ID from another PBX is another
  // call, and another PBX's session is NOT_FOUND to the caller (no oracle).
  absl::StatusOr<v1::AllocateSessionResponse> Allocate(const v1::AllocateSessionRequest& request,
                                                       const grpcutil::Caller& caller);
  absl::StatusOr<v1::AnswerSessionResponse> Answer(const v1::AnswerSessionRequest& request,
                                                   const grpcutil::Caller& caller);
  absl::StatusOr<v1::UpdateSessionResponse> Update(const v1::UpdateSessionRequest& request,
                                                   const grpcutil::Caller& caller);
  absl::StatusOr<v1::Session> Get(const std::string& session_id, const grpcutil::Caller& caller);
  absl::StatusOr<v1::ListSessionsResponse> List(const v1::ListSessionsRequest& request, const grpcutil::Caller& caller);
  // Ends the session now, or after `delay` unless new SDP revives it first (Session.release_at).
  absl::StatusOr<v1::Session> Release(const std::string& session_id, const grpcutil::Caller& caller,
                                      absl::Duration delay = absl::ZeroDuration());

 private:
  // The session as the caller may see it: another owner's session is NOT_FOUND.
  absl::StatusOr<v1::Session> LoadFor(const std::string& session_id, const grpcutil::Caller& caller);
  // New SDP from `side` applied to `session` (relay told, `*relay_told` set); the SDP rewritten for
  // the other side.
  absl::StatusOr<std::string> ApplySdp(v1::Session& session, v1::Side side, const std::string& sdp,
                                       const v1::SocketAddress& signaling_source, bool* relay_told);
  // SessionWriter::Change for an SDP change; one that told the worker and then gave up (lost to
  // other writers, or the session ended) puts the worker back on the stored state.
  absl::StatusOr<v1::Session> ChangeSdp(const std::string& session_id,
                                        const std::function<absl::Status(v1::Session&, bool*)>& change,
                                        const SessionEvent* event);
  // The same Call-ID and from-tag again: a re-offer of the live session holding them.
  absl::StatusOr<v1::AllocateSessionResponse> Reoffer(const std::string& session_id,
                                                      const v1::AllocateSessionRequest& request);
  absl::StatusOr<v1::Session> NewSession(const v1::AllocateSessionRequest& request, const std::string& owner) const;

  const SessionManagerOptions options_;
  SessionStore* store_;
  SessionWriter* writer_;
  RelaySessions* relay_;
  ControlMetrics* metrics_;
  const NatDetector* detector_;
  RelayAddressCheck is_relay_address_;
};

}  // namespace latchkey::control
