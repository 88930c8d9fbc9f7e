#pragma once
// The ng commands on Latchkey's session core: one parsed request in, one reply dictionary out, never
// nothing (silence disables the node in Kamailio for a minute). No sockets here (ng_server.h), no
// second session implementation: offers, answers and updates are SessionManager calls made as the
// ng identity, the call's sessions read from the shared store, so any control replica can answer
// any request.
//
// Replies, as Kamailio 5.6 and OpenSIPS 3.x read them:
// - ping: {result: pong}.
// - offer/answer: {result: ok, sdp} (+ warning); a repeated offer or answer returns the same ports.
//   SDP this front door already rewrote (a second rtpengine_manage pass) comes back unchanged, with a
//   warning, so media is never looped through the relay twice.
// - delete: {result: ok} after a release, delayed by `delete delay` (else the configured default)
//   during which new SDP revives the call; a call or tag not found is still ok, with a warning
//   (error only with the `fatal` flag), as retransmitted BYEs and CANCEL+487 depend on it.
// - query: {result: ok, created, last signal, totals: {RTP, RTCP}, tags}; Kamailio's $rtpstat
//   needs totals.RTP and totals.RTCP (RTCP is not counted apart: zeros).
// - errors: {result: error, error-reason}. Out of relay capacity is "Ran out of ports" (Kamailio
//   then tries its next node), or {result: "load limit"} when the client said it supports that.
#include <functional>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "common/grpc/auth.h"
#include "services/control/ng/bencode.h"
#include "services/control/ng/call_routing.h"
#include "services/control/ng/command.h"
#include "services/control/ng/translate.h"
#include "services/control/sessions/session_manager.h"
#include "services/control/store/session_store.h"

namespace latchkey::control::ng {

struct CommandOptions {
  // The identity ng sessions belong to (they are invisible to other PBX identities).
  grpcutil::Caller caller;
  // Delete delay when the request names none (rtpengine's default is 30 s).
  absl::Duration delete_delay = absl::Seconds(30);
  // Most live sessions (forks) one Call-ID may hold through this front door.
  size_t max_sessions_per_call = 32;
};

// What one request came to, for metrics and the log line.
struct Outcome {
  std::string result;  // "ok", "pong", "error", "load limit"
  std::string detail;  // error-reason or warning
  size_t ignored = 0;  // unknown keys and flags
};

class CommandHandler {
 public:
  CommandHandler(CommandOptions options, SessionManager* sessions, SessionStore* store,
                 std::function<absl::Time()> clock)
      : options_(std::move(options)), sessions_(sessions), store_(store), clock_(std::move(clock)) {}

  // `client_ip`: the ng client's address (the signalling source when the request names none).
  Value Handle(const Value& body, const std::string& client_ip, Outcome* outcome);

 private:
  // What an offer and an answer start from: the request's translation and the call's live sessions;
  // `done` when the SDP is this relay's own output (returned as it is).
  struct SdpRequest {
    Translation translation;
    std::vector<v1::Session> call;
    std::optional<Value> done;
  };
  absl::StatusOr<SdpRequest> ReadSdpRequest(const Command& command, const std::string& client_ip,
                                            std::vector<std::string>& warnings);
  absl::StatusOr<Value> Offer(const Command& command, const std::string& client_ip,
                              std::vector<std::string>& warnings);
  absl::StatusOr<Value> Answer(const Command& command, const std::string& client_ip,
                               std::vector<std::string>& warnings);
  absl::StatusOr<Value> Delete(const Command& command, std::vector<std::string>& warnings);
  // An in-dialog offer or answer: UpdateSession of the side the route names.
  absl::StatusOr<Value> Update(const Route& route, const Command& command, const Translation& translation);
  absl::StatusOr<Value> Query(const Command& command);
  absl::StatusOr<std::vector<v1::Session>> Call(const Command& command);

  const CommandOptions options_;
  SessionManager* sessions_;
  SessionStore* store_;
  std::function<absl::Time()> clock_;
};

// The reply for a failed request: error-reason from the status, load limit or "Ran out of ports"
// for capacity.
Value ErrorReply(const absl::Status& status, bool supports_load_limit);

}  // namespace latchkey::control::ng
