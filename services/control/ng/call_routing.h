#pragma once
// Which session an ng request is about, and what to do with it: rtpengine's tag roles mapped onto
// Latchkey's sessions (caller = the party that offered first, callee = the party that answered).
// Pure: it reads the live sessions of the request's Call-ID and decides.
//
// Rules (the ng `from-tag` is always the party whose SDP the message carries, or for an answer the
// party that offered):
// - An offer or answer naming both parties (from-tag and to-tag) is about that dialogue whatever
//   its via-branch, since in-dialog requests do not repeat the initial offer's branch: an offer from
//   the caller updates the caller's leg, one from the callee (tags reversed) the callee's leg (both
//   legs keep their relay ports); an answer completes or repeats that session's answer, or answers
//   the callee's re-INVITE (tags reversed) by updating the caller's leg.
// - offer otherwise: from-tag offering again in the same via-branch -> a re-offer of that session
//   (same ports); else a new session (with a via-branch, a new fork; a late offer, whose offerer is
//   the SIP callee, is simply a new session with that party as caller). The callee offering before
//   it answered is refused.
// - answer otherwise: the unanswered session from-tag offered (its fork by via-branch); a new
//   to-tag for an answered session (183 from one tag, 200 from another) becomes the callee's tag.
// - delete/query: with a via-branch, that fork only; with both tags, that dialogue only (or a call
//   never answered: a CANCEL's 487), never another fork's answered call; with one tag, every
//   session it belongs to; with none, every session of the call.
// A via-branch no fork carries falls back to the unforked sessions (for answers, deletes, queries).
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
  // kAnswer from a new to-tag for an answered session: the tag replaces the callee's.
  bool retag = false;
};

Route RouteOffer(const Command& command, const std::vector<v1::Session>& call);
Route RouteAnswer(const Command& command, const std::vector<v1::Session>& call);
// The sessions a delete or query is about (empty: none matched).
std::vector<const v1::Session*> SelectSessions(const Command& command, const std::vector<v1::Session>& call);

}  // namespace latchkey::control::ng
