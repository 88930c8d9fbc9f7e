#pragma once
// Which session an ng request is about, and what to do with it: rtpengine's tag roles mapped onto
// Latchkey's sessions (caller = the party that offered first, callee = the party that answered).
// Pure: it reads the live sessions of the request's Call-ID and decides.
//
// Rules (the ng `from-tag` is always the party whose SDP the message carries, or for an answer the
// party that offered):
// - offer: from-tag is a session's caller (same via-branch) -> a re-offer of that session (same
//   ports); else from-tag is a session's callee and to-tag its caller -> the callee's re-INVITE,
//   an update of the callee's leg (both legs keep their relay ports); else a new session (with a
//   via-branch, a new fork; a late offer, whose offerer is the SIP callee, is simply a new session
//   with that party as caller).
// - answer: from-tag is a session's caller -> that session's answer (the fork whose callee is
//   to-tag, else the unanswered one); an answer with a new to-tag for an answered session (183
//   then 200 from another tag) updates the callee's leg. Else from-tag is a callee and to-tag its
//   caller -> the answer to the callee's re-INVITE, an update of the caller's leg. Else unknown.
// - delete/query: with a via-branch, that fork only; with tags, the sessions either tag belongs to
//   (both, when both are given and some session has both); with neither, every session of the call.
// A via-branch in an answer, delete or query that no fork carries falls back to the unforked session.
#include <string>
#include <vector>

#include "latchkey/v1/nat_control.pb.h"
#include "services/control/ng/command.h"

namespace latchkey::control::ng {

enum class Action {
  kAllocate,      // AllocateSession (new, or re-offer of the session holding the call key)
  kAnswer,        // AnswerSession of `session`
  kUpdateCaller,  // UpdateSession(SIDE_CALLER) of `session`
  kUpdateCallee,  // UpdateSession(SIDE_CALLEE) of `session`
  kUnknown,       // no such call: error "Unknown call-id"
  kRefuse,        // a call that cannot take this request now: error `reason`
};

struct Route {
  Action action = Action::kUnknown;
  const v1::Session* session = nullptr;
  std::string reason;
};

Route RouteOffer(const Command& command, const std::vector<v1::Session>& call);
Route RouteAnswer(const Command& command, const std::vector<v1::Session>& call);
// The sessions a delete or query is about (empty: none matched).
std::vector<const v1::Session*> SelectSessions(const Command& command, const std::vector<v1::Session>& call);

}  // namespace latchkey::control::ng
