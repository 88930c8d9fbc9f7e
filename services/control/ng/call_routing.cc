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
  for (const v1::Session* s : Fork(command, call, /*fall_back=*/false)) {
    // Without a via-branch a re-offer must still find its session (Allocate looks it up by branch).
    if (s->caller().tag() == from && s->branch() == command.via_branch) return {Action::kAllocate, s, ""};
  }
  if (!command.to_tag.empty()) {
    const v1::Session* best = nullptr;
    for (const v1::Session* s : Fork(command, call, /*fall_back=*/true)) {
      if (s->caller().tag() != command.to_tag) continue;
      if (s->callee().tag() == from) {
        best = s;
        break;
      }
      if (best == nullptr && s->callee().tag().empty()) best = s;
    }
    if (best != nullptr) {
      if (best->state() != v1::SESSION_STATE_ANSWERED) {
        return {Action::kRefuse, best, "Invalid dialogue association: the callee offers before it answered"};
      }
      return {Action::kUpdateCallee, best, ""};
    }
  }
  return {Action::kAllocate, nullptr, ""};
}

Route RouteAnswer(const Command& command, const std::vector<v1::Session>& call) {
  const std::vector<const v1::Session*> fork = Fork(command, call, /*fall_back=*/true);
  const v1::Session* same_callee = nullptr;
  const v1::Session* unanswered = nullptr;
  const v1::Session* answered = nullptr;
  for (const v1::Session* s : fork) {
    if (s->caller().tag() != command.from_tag) continue;
    if (s->callee().tag() == command.to_tag) same_callee = s;
    if (s->state() == v1::SESSION_STATE_OFFERED && unanswered == nullptr) unanswered = s;
    if (s->state() == v1::SESSION_STATE_ANSWERED && answered == nullptr) answered = s;
  }
  if (same_callee != nullptr) return {Action::kAnswer, same_callee, ""};
  if (unanswered != nullptr) return {Action::kAnswer, unanswered, ""};
  if (answered != nullptr) return {Action::kUpdateCallee, answered, ""};
  // The answer to the callee's re-INVITE: the caller answers.
  for (const v1::Session* s : fork) {
    if (s->caller().tag() == command.to_tag && s->callee().tag() == command.from_tag) {
      return {Action::kUpdateCaller, s, ""};
    }
  }
  return {Action::kUnknown, nullptr, "Unknown call-id"};
}

std::vector<const v1::Session*> SelectSessions(const Command& command, const std::vector<v1::Session>& call) {
  const std::vector<const v1::Session*> fork = Fork(command, call, /*fall_back=*/!command.via_branch.empty());
  auto has = [](const v1::Session* s, const std::string& tag) {
    return !tag.empty() && (s->caller().tag() == tag || s->callee().tag() == tag);
  };
  if (command.from_tag.empty() && command.to_tag.empty()) return fork;
  std::vector<const v1::Session*> both;
  std::vector<const v1::Session*> either;
  for (const v1::Session* s : fork) {
    if (has(s, command.from_tag) && has(s, command.to_tag)) both.push_back(s);
    if (has(s, command.from_tag) || (command.from_tag.empty() && has(s, command.to_tag))) either.push_back(s);
  }
  return both.empty() ? either : both;
}

}  // namespace latchkey::control::ng
