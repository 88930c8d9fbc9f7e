#pragma once
// A linearizability checker for the histories tests record against a replicated store: does some
// single order of the operations, respecting real time, explain every answer a client saw?
//
// Algorithm (Wing & Gong, with Lowe's memoization): depth-first search over partial linearizations.
// An operation may come next only if no operation still unplaced completed before it was invoked,
// i.e. its invocation is no later than the earliest completion among unplaced answered operations;
// the model's `step` must accept its answer in the current state. The search backtracks when nothing
// fits. Two partial linearizations that placed the same set of operations and reached the same model
// state have the same future, so each (placed set, State::Key()) is explored once: that turns the
// factorial search into one bounded by 2^concurrency * states, fine for a few hundred operations with
// a handful of clients. Operations without an answer (timeouts) may be placed anywhere after their
// invocation or never, and nothing has to wait for them, since they never completed. An operation
// that completed at the very instant another was invoked counts as concurrent with it: clocks are
// coarse, and a checker should report only violations it is sure of.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace latchkey::testing {

// One completed (or timed-out) operation as a client saw it.
template <typename Op, typename Result>
struct Operation {
  Op op;                 // what was asked
  Result result;         // what was answered; ignored when there was no answer
  absl::Time invoked;    // before the request was sent
  absl::Time completed;  // after the answer arrived; absl::InfiniteFuture() if it never came (it may
                         // or may not have taken effect)
};

struct LinearizabilityResult {
  bool ok = false;
  // Set when !ok only because the history was malformed or a limit was hit: no verdict either way.
  bool refused = false;
  // Human-readable: on failure, the longest linearizable prefix found and the operations that could
  // not come next.
  std::string explanation;
  // Indices into the history: the linearization on success, the longest linearizable prefix found
  // otherwise. Unanswered operations appear only where the witness has them take effect.
  std::vector<size_t> order;
};

template <typename Op, typename Result>
struct LinearizabilityOptions {
  // Histories longer than this are refused rather than searched (the search is exponential in the
  // worst case).
  size_t max_operations = 200;
  // The search gives up (refused) after visiting this many distinct (placed set, state) pairs, so a
  // pathological history fails fast instead of running forever or exhausting memory.
  size_t max_states = 1'000'000;
  // Describes an operation in explanations; without it, operations are named by index only.
  std::function<std::string(const Operation<Op, Result>&)> describe = nullptr;
};

// The model's state: copyable, and `Key()` must be equal for two states exactly when they behave the
// same, since the memo compares keys.
template <typename State>
concept LinearizableState = std::copy_constructible<State> && requires(const State& s) {
  { s.Key() } -> std::convertible_to<std::string>;
};

namespace linearizability_internal {

template <typename State, typename Op, typename Result, typename Step, typename StepUnknown>
class Search {
 public:
  Search(const std::vector<Operation<Op, Result>>& history, Step& step, StepUnknown& step_unknown,
         const LinearizabilityOptions<Op, Result>& options)
      : history_(history), step_(step), step_unknown_(step_unknown), options_(options),
        placed_((history.size() + 7) / 8, '\0') {
    by_invocation_.reserve(history.size());
    for (size_t i = 0; i < history.size(); ++i) {
      by_invocation_.push_back(i);
      if (!Unanswered(i)) ++unplaced_answered_;
    }
    std::stable_sort(by_invocation_.begin(), by_invocation_.end(),
                     [&](size_t a, size_t b) { return history_[a].invoked < history_[b].invoked; });
    if (!history.empty()) origin_ = history_[by_invocation_.front()].invoked;
  }

  LinearizabilityResult Run(const State& initial) {
    LinearizabilityResult result;
    if (Explore(initial)) {
      result.ok = true;
      result.order = path_;
      result.explanation = absl::StrCat("linearizable (", seen_.size(), " states explored)");
      return result;
    }
    result.order = longest_;
    if (gave_up_) {
      result.refused = true;
      result.explanation = absl::StrCat("gave up after exploring ", seen_.size(), " states (max_states ",
                                        options_.max_states, ") without a verdict; ");
    } else {
      result.explanation = "not linearizable; ";
    }
    absl::StrAppend(&result.explanation, DescribeLongest(initial));
    return result;
  }

 private:
  bool Unanswered(size_t i) const { return history_[i].completed == absl::InfiniteFuture(); }
  bool Placed(size_t i) const { return (placed_[i / 8] >> (i % 8)) & 1; }
  void SetPlaced(size_t i, bool on) {
    const char bit = static_cast<char>(1 << (i % 8));
    placed_[i / 8] = static_cast<char>(on ? (placed_[i / 8] | bit) : (placed_[i / 8] & ~bit));
  }

  std::optional<State> Apply(const State& state, size_t i) {
    const Operation<Op, Result>& o = history_[i];
    if (!Unanswered(i)) return std::optional<State>(step_(state, o.op, o.result));
    // step_unknown may return State (the operation always can take effect) or std::optional<State>.
    return std::optional<State>(step_unknown_(state, o.op));
  }

  // Nothing unplaced may complete before a candidate was invoked (real-time order).
  absl::Time Horizon() const {
    absl::Time horizon = absl::InfiniteFuture();
    for (size_t i = 0; i < history_.size(); ++i) {
      if (!Placed(i)) horizon = std::min(horizon, history_[i].completed);
    }
    return horizon;
  }

  bool Explore(const State& state) {
    if (unplaced_answered_ == 0) return true;
    // The placed bitmap has a fixed length, so prefixing it keeps keys unambiguous.
    if (!seen_.insert(absl::StrCat(placed_, std::string(state.Key()))).second) return false;
    if (seen_.size() > options_.max_states) {
      gave_up_ = true;
      return false;
    }
    const absl::Time horizon = Horizon();
    for (size_t i : by_invocation_) {
      if (history_[i].invoked > horizon) break;
      if (Placed(i)) continue;
      std::optional<State> next = Apply(state, i);
      if (!next.has_value()) continue;
      SetPlaced(i, true);
      if (!Unanswered(i)) --unplaced_answered_;
      path_.push_back(i);
      if (path_.size() > longest_.size()) longest_ = path_;
      if (Explore(*next)) return true;
      path_.pop_back();
      if (!Unanswered(i)) ++unplaced_answered_;
      SetPlaced(i, false);
      if (gave_up_) return false;
    }
    return false;
  }

  std::string Describe(size_t i) const {
    const Operation<Op, Result>& o = history_[i];
    std::string text = absl::StrCat("#", i, " [+", absl::FormatDuration(o.invoked - origin_), ", ");
    absl::StrAppend(&text, Unanswered(i) ? "no answer" : absl::StrCat("+", absl::FormatDuration(o.completed - origin_)),
                    "]");
    if (options_.describe) absl::StrAppend(&text, " ", options_.describe(o));
    return text;
  }

  // Replays the longest prefix: the deepest point the search reached is where every operation that
  // could come next is rejected by the model, which is what a reader needs to see.
  std::string DescribeLongest(const State& initial) {
    std::fill(placed_.begin(), placed_.end(), '\0');
    State state = initial;
    std::string text = absl::StrCat("longest linearizable prefix places ", longest_.size(), " of ",
                                    history_.size(), " operations:\n");
    for (size_t i : longest_) {
      absl::StrAppend(&text, "  ", Describe(i), "\n");
      std::optional<State> next = Apply(state, i);
      if (next.has_value()) state = std::move(*next);  // always: the search applied it this way
      SetPlaced(i, true);
    }
    absl::StrAppend(&text, "state then: ", std::string(state.Key()), "\n");
    std::string stuck;
    const absl::Time horizon = Horizon();
    for (size_t i : by_invocation_) {
      if (history_[i].invoked > horizon) break;
      if (Placed(i) || Unanswered(i)) continue;
      absl::StrAppend(&stuck, "  ", Describe(i), Apply(state, i).has_value() ? "" : " (answer rejected)", "\n");
    }
    if (!stuck.empty()) absl::StrAppend(&text, "could not place next any of:\n", stuck);
    return text;
  }

  const std::vector<Operation<Op, Result>>& history_;
  Step& step_;
  StepUnknown& step_unknown_;
  const LinearizabilityOptions<Op, Result>& options_;
  std::vector<size_t> by_invocation_;
  absl::Time origin_;
  std::string placed_;  // bitmap over history indices
  size_t unplaced_answered_ = 0;
  std::vector<size_t> path_;
  std::vector<size_t> longest_;
  absl::flat_hash_set<std::string> seen_;
  bool gave_up_ = false;
};

}  // namespace linearizability_internal

// Whether `history` is linearizable with respect to the sequential model given by `step` and
// `step_unknown`, starting from `initial`:
//   step(const State&, const Op&, const Result&) -> std::optional<State>: the state after `op` if a
//     correct single-copy system in that state would answer `result`, nullopt otherwise.
//   step_unknown(const State&, const Op&) -> State or std::optional<State>: the state after an
//     unanswered `op` takes effect (with whatever answer it would have had); nullopt if it cannot.
// Indices in the result refer to positions in `history`, which need not be sorted.
template <LinearizableState State, typename Op, typename Result, typename Step, typename StepUnknown>
  requires std::convertible_to<std::invoke_result_t<Step&, const State&, const Op&, const Result&>,
                               std::optional<State>> &&
           std::convertible_to<std::invoke_result_t<StepUnknown&, const State&, const Op&>, std::optional<State>>
LinearizabilityResult CheckLinearizable(const std::vector<Operation<Op, Result>>& history, State initial, Step step,
                                        StepUnknown step_unknown,
                                        const LinearizabilityOptions<Op, Result>& options = {}) {
  LinearizabilityResult result;
  if (history.size() > options.max_operations) {
    result.refused = true;
    result.explanation = absl::StrCat("history too large: ", history.size(), " operations, max_operations is ",
                                      options.max_operations, "; split it (e.g. per key) or raise the limit");
    return result;
  }
  for (size_t i = 0; i < history.size(); ++i) {
    if (history[i].completed < history[i].invoked) {
      result.refused = true;
      result.explanation = absl::StrCat("malformed history: operation #", i, " completed before it was invoked");
      return result;
    }
  }
  linearizability_internal::Search<State, Op, Result, Step, StepUnknown> search(history, step, step_unknown,
                                                                                 options);
  return search.Run(initial);
}

}  // namespace latchkey::testing
