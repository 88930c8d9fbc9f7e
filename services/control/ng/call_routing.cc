#include "services/control/ng/call_routing.h"

namespace latchkey::control::ng {
namespace {

// The sessions of the request's fork: its via-branch exactly; for follow-up requests (not offers)
// whose via-branch no fork carries, the unforked ones.
std::vector<const v1::Session*> Fork(const Command& command, const std::vector<v1::Session>& call,
                                     bool fall_back) {
  std::vector<const v1::Session*> exact;
  std::vector<const v1::Session*> unforked;
  for (const v1::Session& s : call) {
    if (command.via_branch.empty() ? true : s.branch() == command.via_branch) exact.push_back(&s);
    if (s.branch().empty()) unforked.push_back(&s);
  }
  if (exact.empty() && fall_back) return unforked;
  return exact;
}

}  // namespace

Route RouteOffer(const Command& command, const std::vector<v1::Session>& call) {
  const std::string& from = command.from_tag;
  const std::string& to = command.to_tag;
  if (!to.empty()) {
    // An in-dialog offer names both parties, and the dialogue decides whatever via-branch the
    // in-dialog request carries (the initial offer's branch is not repeated there).
    for (const v1::Session& s : call) {
      // The caller again: re-INVITE, UPDATE, a session refresh.
      if (s.caller().tag() == from && s.callee().tag() == to) return {Action::kUpdateCaller, &s, ""};
    }
    for (const v1::Session& s : call) {
      // The callee's re-INVITE: tags reversed.
      if (s.caller().tag() == to && s.callee().tag() == from) return {Action::kUpdateCallee, &s, ""};
    }
  }
  // The same fork again (a retransmitted INVITE, the offer repeated per branch): a re-offer.
  for (const v1::Session* s : Fork(command, call, /*fall_back=*/false)) {
    if (s->caller().tag() == from && s->branch() == command.via_branch) return {Action::kAllocate, s, ""};
  }
  if (!to.empty()) {
    for (const v1::Session& s : call) {
      if (s.caller().tag() == to && s.callee().tag().empty()) {
        return {Action::kRefuse, &s, "Invalid dialogue association: the callee offers before it answered"};
      }
    }
  }
  // A new call, a new fork, or a late offer (whose offerer is the SIP callee).
  return {Action::kAllocate, nullptr, ""};
}

Route RouteAnswer(const Command& command, const std::vector<v1::Session>& call) {
  // Both parties known: that dialogue, whatever the via-branch (a repeated 200, the answer to a
  // caller's re-INVITE).
  for (const v1::Session& s : call) {
    if (s.caller().tag() == command.from_tag && s.callee().tag() == command.to_tag) {
      return {Action::kAnswer, &s, ""};
    }
  }
  const std::vector<const v1::Session*> fork = Fork(command, call, /*fall_back=*/true);
  const v1::Session* unanswered = nullptr;
  const v1::Session* answered = nullptr;
  for (const v1::Session* s : fork) {
    if (s->caller().tag() != command.from_tag) continue;
    if (s->state() == v1::SESSION_STATE_OFFERED && unanswered == nullptr) unanswered = s;
    if (s->state() == v1::SESSION_STATE_ANSWERED && answered == nullptr) answered = s;
  }
  if (unanswered != nullptr) return {Action::kAnswer, unanswered, ""};
  // 183 from one tag, 200 from another (no fork of its own): the new tag becomes the callee's.
  if (answered != nullptr) return {Action::kAnswer, answered, "", /*retag=*/true};
  // The caller's answer to the callee's re-INVITE.
  for (const v1::Session& s : call) {
    if (s.caller().tag() == command.to_tag && s.callee().tag() == command.from_tag) {
      return {Action::kUpdateCaller, &s, ""};
    }
  }
  return {Action::kUnknown, nullptr, "Unknown call-id"};
}

std::vector<const v1::Session*> SelectSessions(const Command& command, const std::vector<v1::Session>& call) {
  const std::vector<const v1::Session*> fork = Fork(command, call, /*fall_back=*/!command.via_branch.empty());
  const std::string& from = command.from_tag;
  const std::string& to = command.to_tag;
  if (from.empty() && to.empty()) return fork;
  std::vector<const v1::Session*> out;
  for (const v1::Session* s : fork) {
    const std::string& a = s->caller().tag();
    const std::string& b = s->callee().tag();
    if (!from.empty() && !to.empty()) {
      // Both parties named: that dialogue only, or a call its callee never answered (a CANCEL's
      // 487); never another fork's answered call.
      if ((a == from && b == to) || (a == to && b == from) || ((a == from || a == to) && b.empty())) {
        out.push_back(s);
      }
    } else {
      const std::string& tag = from.empty() ? to : from;
      if (a == tag || b == tag) out.push_back(s);
    }
  }
  return out;
}

}  // namespace latchkey::control::ng
