#include "tests/support/linearizability.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey {
namespace {

using ::latchkey::testing::CheckLinearizable;
using ::latchkey::testing::LinearizabilityOptions;
using ::latchkey::testing::LinearizabilityResult;
using ::latchkey::testing::Operation;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

absl::Time At(int64_t ms) { return absl::UnixEpoch() + absl::Milliseconds(ms); }
const absl::Time kNoAnswer = absl::InfiniteFuture();

// --- A register: read and write one integer, initially 0. ---

struct Register {
  int value = 0;
  std::string Key() const { return absl::StrCat(value); }
};
struct RegisterOp {
  enum Kind { kRead, kWrite } kind;
  int value = 0;  // written; unused by reads
};
using RegisterOperation = Operation<RegisterOp, int>;  // result: the value read; unused by writes

RegisterOperation Write(int value, int64_t invoked_ms, std::optional<int64_t> completed_ms) {
  return {{RegisterOp::kWrite, value}, 0, At(invoked_ms), completed_ms ? At(*completed_ms) : kNoAnswer};
}
RegisterOperation Read(int seen, int64_t invoked_ms, int64_t completed_ms) {
  return {{RegisterOp::kRead, 0}, seen, At(invoked_ms), At(completed_ms)};
}

std::optional<Register> RegisterStep(const Register& state, const RegisterOp& op, int result) {
  if (op.kind == RegisterOp::kWrite) return Register{op.value};
  if (result != state.value) return std::nullopt;
  return state;
}
Register RegisterStepUnknown(const Register& state, const RegisterOp& op) {
  return op.kind == RegisterOp::kWrite ? Register{op.value} : state;
}

LinearizabilityResult CheckRegister(const std::vector<RegisterOperation>& history,
                                    const LinearizabilityOptions<RegisterOp, int>& options = {}) {
  return CheckLinearizable(history, Register{}, RegisterStep, RegisterStepUnknown, options);
}

TEST(LinearizabilityTest, SequentialRegisterHistoryIsLinearizableInItsOwnOrder) {
  LinearizabilityResult result = CheckRegister({
      Write(1, 0, 1),
      Read(1, 2, 3),
      Write(2, 4, 5),
      Read(2, 6, 7),
  });
  EXPECT_TRUE(result.ok) << result.explanation;
  EXPECT_FALSE(result.refused);
  EXPECT_THAT(result.order, ElementsAre(0, 1, 2, 3));
}

TEST(LinearizabilityTest, EmptyHistoryIsLinearizable) {
  EXPECT_TRUE(CheckRegister({}).ok);
}

TEST(LinearizabilityTest, HistoryNeedNotBeSortedByInvocation) {
  LinearizabilityResult result = CheckRegister({Read(2, 6, 7), Write(2, 4, 5), Write(1, 0, 1)});
  EXPECT_TRUE(result.ok) << result.explanation;
  EXPECT_THAT(result.order, ElementsAre(2, 1, 0));
}

TEST(LinearizabilityTest, ConcurrentWritesMayTakeEffectInEitherOrder) {
  // Both writes overlap, so later reads may see either one as the last...
  for (int last : {1, 2}) {
    LinearizabilityResult result = CheckRegister({Write(1, 0, 10), Write(2, 0, 10), Read(last, 11, 12)});
    EXPECT_TRUE(result.ok) << "last=" << last << ": " << result.explanation;
  }
  // ...and a read overlapping them may see the first while a later read sees the second.
  LinearizabilityResult result =
      CheckRegister({Write(1, 0, 10), Write(2, 0, 10), Read(2, 1, 9), Read(1, 11, 12)});
  EXPECT_TRUE(result.ok) << result.explanation;
  EXPECT_THAT(result.order, ElementsAre(1, 2, 0, 3));
}

TEST(LinearizabilityTest, ValueCannotChangeAfterAllWritesCompleted) {
  // Either order of the concurrent writes is fine, but not both: once both completed, reads agree.
  LinearizabilityResult result =
      CheckRegister({Write(1, 0, 10), Write(2, 0, 10), Read(1, 11, 12), Read(2, 13, 14)});
  EXPECT_FALSE(result.ok);
  EXPECT_FALSE(result.refused);
  EXPECT_THAT(result.explanation, HasSubstr("not linearizable"));
}

TEST(LinearizabilityTest, StaleReadAfterCompletedWriteIsNotLinearizable) {
  LinearizabilityResult result = CheckRegister({Write(1, 0, 1), Write(2, 2, 3), Read(1, 4, 5)});
  EXPECT_FALSE(result.ok);
  EXPECT_FALSE(result.refused);
  // Both writes fit; the read is what cannot be placed.
  EXPECT_THAT(result.order, ElementsAre(0, 1));
  EXPECT_THAT(result.explanation, HasSubstr("places 2 of 3"));
  EXPECT_THAT(result.explanation, HasSubstr("state then: 2"));
  EXPECT_THAT(result.explanation, HasSubstr("could not place next any of:\n  #2 "));
}

TEST(LinearizabilityTest, ReadOverlappingTheSecondWriteMaySeeTheFirst) {
  // The same values as the stale read, but the read started before the second write completed.
  LinearizabilityResult result = CheckRegister({Write(1, 0, 1), Write(2, 2, 6), Read(1, 4, 5)});
  EXPECT_TRUE(result.ok) << result.explanation;
}

TEST(LinearizabilityTest, ReadCannotSeeAWriteInvokedAfterItCompleted) {
  LinearizabilityResult result = CheckRegister({Read(1, 0, 1), Write(1, 2, 3)});
  EXPECT_FALSE(result.ok);
  EXPECT_FALSE(result.refused);
}

TEST(LinearizabilityTest, OperationsTouchingAtOneInstantCountAsConcurrent) {
  // The read may have been linearized before the write: the clock cannot order them.
  EXPECT_TRUE(CheckRegister({Write(1, 0, 5), Read(0, 5, 6)}).ok);
  EXPECT_FALSE(CheckRegister({Write(1, 0, 5), Read(0, 6, 7)}).ok);
}

TEST(LinearizabilityTest, ReadOfAValueNeverWrittenIsNotLinearizable) {
  LinearizabilityResult result = CheckRegister({Write(1, 0, 10), Write(2, 0, 10), Read(7, 5, 15)});
  EXPECT_FALSE(result.ok);
  EXPECT_FALSE(result.refused);
}

TEST(LinearizabilityTest, UnansweredWriteMayHaveTakenEffect) {
  LinearizabilityResult result = CheckRegister({Write(1, 0, 1), Write(2, 2, std::nullopt), Read(2, 3, 4)});
  EXPECT_TRUE(result.ok) << result.explanation;
  EXPECT_THAT(result.order, ElementsAre(0, 1, 2));
}

TEST(LinearizabilityTest, UnansweredWriteMayNeverHaveTakenEffect) {
  LinearizabilityResult result = CheckRegister({Write(1, 0, 1), Write(2, 2, std::nullopt), Read(1, 3, 4)});
  EXPECT_TRUE(result.ok) << result.explanation;
  EXPECT_THAT(result.order, ElementsAre(0, 2));
}

TEST(LinearizabilityTest, UnansweredWriteMayTakeEffectLongAfterItWasSent) {
  // No answer means no upper bound: reads may see the old value for a while and then the new one.
  LinearizabilityResult result =
      CheckRegister({Write(1, 0, 1), Write(2, 2, std::nullopt), Read(1, 3, 4), Read(1, 50, 51), Read(2, 100, 101)});
  EXPECT_TRUE(result.ok) << result.explanation;
  EXPECT_THAT(result.order, ElementsAre(0, 2, 3, 1, 4));
}

TEST(LinearizabilityTest, UnansweredWriteTakesEffectAtMostOnce) {
  // Once a read saw it, it cannot be undone.
  LinearizabilityResult result =
      CheckRegister({Write(1, 0, 1), Write(2, 2, std::nullopt), Read(2, 3, 4), Read(1, 5, 6)});
  EXPECT_FALSE(result.ok);
  EXPECT_FALSE(result.refused);
}

TEST(LinearizabilityTest, UnansweredWriteCannotExplainAReadBeforeItWasSent) {
  LinearizabilityResult result = CheckRegister({Read(2, 0, 1), Write(2, 2, std::nullopt)});
  EXPECT_FALSE(result.ok);
  EXPECT_FALSE(result.refused);
}

TEST(LinearizabilityTest, ExplanationUsesTheFormatter) {
  LinearizabilityOptions<RegisterOp, int> options;
  options.describe = [](const RegisterOperation& o) {
    return o.op.kind == RegisterOp::kWrite ? absl::StrCat("write(", o.op.value, ")")
                                           : absl::StrCat("read() -> ", o.result);
  };
  LinearizabilityResult result = CheckRegister({Write(1, 0, 1), Write(2, 2, 3), Read(1, 4, 5)}, options);
  ASSERT_FALSE(result.ok);
  EXPECT_THAT(result.explanation, HasSubstr("#0 [+0, +1ms] write(1)\n"));
  EXPECT_THAT(result.explanation, HasSubstr("#1 [+2ms, +3ms] write(2)\n"));
  EXPECT_THAT(result.explanation, HasSubstr("#2 [+4ms, +5ms] read() -> 1 (answer rejected)\n"));
}

TEST(LinearizabilityTest, HistoriesAboveTheSizeBoundAreRefused) {
  std::vector<RegisterOperation> history;
  for (int i = 0; i < 201; ++i) history.push_back(Write(i, 2 * i, 2 * i + 1));
  LinearizabilityResult result = CheckRegister(history);  // default bound: 200
  EXPECT_FALSE(result.ok);
  EXPECT_TRUE(result.refused);
  EXPECT_THAT(result.explanation, HasSubstr("too large"));
  EXPECT_THAT(result.explanation, HasSubstr("201"));

  history.resize(10);
  EXPECT_TRUE(CheckRegister(history, {.max_operations = 10}).ok);
  history.push_back(Write(10, 20, 21));
  result = CheckRegister(history, {.max_operations = 10});
  EXPECT_FALSE(result.ok);
  EXPECT_TRUE(result.refused);
  EXPECT_THAT(result.explanation, HasSubstr("too large"));
}

TEST(LinearizabilityTest, SearchGivesUpAfterMaxStates) {
  // Twelve concurrent writes and an impossible read: proving that takes thousands of states.
  std::vector<RegisterOperation> history;
  for (int i = 1; i <= 12; ++i) history.push_back(Write(i, 0, 10));
  history.push_back(Read(-1, 0, 10));
  LinearizabilityResult result = CheckRegister(history, {.max_states = 100});
  EXPECT_FALSE(result.ok);
  EXPECT_TRUE(result.refused);
  EXPECT_THAT(result.explanation, HasSubstr("gave up after exploring 101 states"));

  // With room to finish, the verdict is a real one.
  result = CheckRegister(history);
  EXPECT_FALSE(result.ok);
  EXPECT_FALSE(result.refused);
}

TEST(LinearizabilityTest, MalformedHistoryIsRefused) {
  LinearizabilityResult result = CheckRegister({Write(1, 5, 4)});
  EXPECT_FALSE(result.ok);
  EXPECT_TRUE(result.refused);
  EXPECT_THAT(result.explanation, HasSubstr("#0 completed before it was invoked"));
}

// A realistic load: four clients, 200 operations, each taking effect at a random point within its
// own interval. Without the memo, refuting the corrupted copy would take exponential time.
std::vector<RegisterOperation> RandomLinearizableHistory(uint32_t seed) {
  std::mt19937 random(seed);
  std::vector<RegisterOperation> history;
  std::vector<int64_t> client_free(4, 0);
  int value = 0;
  int64_t now = 0;
  for (int i = 0; i < 200; ++i) {
    now += std::uniform_int_distribution<int64_t>(1, 3)(random);  // this operation's linearization point
    const size_t client = std::uniform_int_distribution<size_t>(0, 3)(random);
    // The client must be idle: its previous operation completed before this one is invoked.
    const int64_t latency = std::uniform_int_distribution<int64_t>(0, 10)(random);
    const int64_t invoked = std::max(client_free[client] + 1, now - latency);
    if (invoked > now) continue;
    const int64_t completed = now + std::uniform_int_distribution<int64_t>(0, 10)(random);
    client_free[client] = completed;
    if (std::uniform_int_distribution<int>(0, 1)(random) == 0) {
      value = i + 1;
      history.push_back(Write(value, invoked, completed));
    } else {
      history.push_back(Read(value, invoked, completed));
    }
  }
  return history;
}

TEST(LinearizabilityTest, LongConcurrentHistoriesAreCheckedQuickly) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    std::vector<RegisterOperation> history = RandomLinearizableHistory(seed);
    ASSERT_GT(history.size(), 100u);
    LinearizabilityResult result = CheckRegister(history);
    EXPECT_TRUE(result.ok) << "seed " << seed << ": " << result.explanation;

    // Corrupt the last read: it now sees a value nobody wrote.
    for (auto it = history.rbegin(); it != history.rend(); ++it) {
      if (it->op.kind == RegisterOp::kRead) {
        it->result = -1;
        break;
      }
    }
    result = CheckRegister(history);
    EXPECT_FALSE(result.ok) << "seed " << seed;
    EXPECT_FALSE(result.refused) << "seed " << seed << ": " << result.explanation;
  }
}

// --- A model resembling the binding store: one binding per AOR. ---

struct Bindings {
  std::map<std::string, int> version_by_aor;
  std::string Key() const {
    std::string key;
    for (const auto& [aor, version] : version_by_aor) absl::StrAppend(&key, aor, "=", version, ";");
    return key;
  }
};
struct BindingOp {
  enum Kind { kUpsert, kRemove, kGet } kind;
  std::string aor;
};
struct BindingResult {
  bool found = false;    // Remove: ok (true) or not_found; Get: a version (true) or not_found
  bool created = false;  // Upsert
  int version = 0;       // Upsert, Get
};
using BindingOperation = Operation<BindingOp, BindingResult>;

// Upsert creates version 1 or bumps the version; Remove deletes; Get reads.
std::optional<Bindings> BindingStep(const Bindings& state, const BindingOp& op, const BindingResult& result) {
  auto it = state.version_by_aor.find(op.aor);
  const bool exists = it != state.version_by_aor.end();
  Bindings next = state;
  switch (op.kind) {
    case BindingOp::kUpsert: {
      const int version = exists ? it->second + 1 : 1;
      if (result.created != !exists || result.version != version) return std::nullopt;
      next.version_by_aor[op.aor] = version;
      return next;
    }
    case BindingOp::kRemove:
      if (result.found != exists) return std::nullopt;
      next.version_by_aor.erase(op.aor);
      return next;
    case BindingOp::kGet:
      if (result.found != exists || (exists && result.version != it->second)) return std::nullopt;
      return next;
  }
  return std::nullopt;
}
// An unanswered operation has exactly one effect, whatever it would have answered.
Bindings BindingStepUnknown(const Bindings& state, const BindingOp& op) {
  Bindings next = state;
  auto it = next.version_by_aor.find(op.aor);
  switch (op.kind) {
    case BindingOp::kUpsert:
      next.version_by_aor[op.aor] = it == next.version_by_aor.end() ? 1 : it->second + 1;
      break;
    case BindingOp::kRemove:
      next.version_by_aor.erase(op.aor);
      break;
    case BindingOp::kGet:
      break;
  }
  return next;
}

BindingOperation Upsert(std::string aor, bool created, int version, int64_t invoked_ms,
                        std::optional<int64_t> completed_ms) {
  return {{BindingOp::kUpsert, std::move(aor)},
          {.created = created, .version = version},
          At(invoked_ms),
          completed_ms ? At(*completed_ms) : kNoAnswer};
}
BindingOperation Remove(std::string aor, bool ok, int64_t invoked_ms, int64_t completed_ms) {
  return {{BindingOp::kRemove, std::move(aor)}, {.found = ok}, At(invoked_ms), At(completed_ms)};
}
BindingOperation Get(std::string aor, std::optional<int> version, int64_t invoked_ms, int64_t completed_ms) {
  return {{BindingOp::kGet, std::move(aor)},
          {.found = version.has_value(), .version = version.value_or(0)},
          At(invoked_ms),
          At(completed_ms)};
}

LinearizabilityResult CheckBindings(const std::vector<BindingOperation>& history) {
  return CheckLinearizable(history, Bindings{}, BindingStep, BindingStepUnknown);
}

TEST(BindingLinearizabilityTest, RacingUpsertsBothCreatedIsNotLinearizable) {
  // Two registrations of the same AOR racing: only one of them can have created the binding.
  LinearizabilityResult result = CheckBindings({
      Upsert("sip:alice@example.com", /*created=*/true, 1, 0, 10),
      Upsert("sip:alice@example.com", /*created=*/true, 1, 2, 12),
  });
  EXPECT_FALSE(result.ok);
  EXPECT_FALSE(result.refused);
  EXPECT_THAT(result.explanation, HasSubstr("state then: sip:alice@example.com=1;"));
}

TEST(BindingLinearizabilityTest, RacingUpsertsOneCreatedOneUpdatedIsLinearizable) {
  LinearizabilityResult result = CheckBindings({
      Upsert("sip:alice@example.com", /*created=*/false, 2, 0, 10),
      Upsert("sip:alice@example.com", /*created=*/true, 1, 2, 12),
      Get("sip:alice@example.com", 2, 13, 14),
  });
  EXPECT_TRUE(result.ok) << result.explanation;
  EXPECT_THAT(result.order, ElementsAre(1, 0, 2));
}

TEST(BindingLinearizabilityTest, UpsertsOfDifferentAorsBothCreate) {
  LinearizabilityResult result = CheckBindings({
      Upsert("sip:alice@example.com", /*created=*/true, 1, 0, 10),
      Upsert("sip:bob@example.com", /*created=*/true, 1, 2, 12),
  });
  EXPECT_TRUE(result.ok) << result.explanation;
}

TEST(BindingLinearizabilityTest, SuccessfulRemoveRacingUpsertLeavesNoBinding) {
  // The remove found the binding, so it came after the upsert: a later get must not find it.
  std::vector<BindingOperation> history = {
      Upsert("sip:alice@example.com", /*created=*/true, 1, 0, 10),
      Remove("sip:alice@example.com", /*ok=*/true, 0, 10),
      Get("sip:alice@example.com", std::nullopt, 11, 12),
  };
  EXPECT_TRUE(CheckBindings(history).ok);
  history[2] = Get("sip:alice@example.com", 1, 11, 12);
  LinearizabilityResult result = CheckBindings(history);
  EXPECT_FALSE(result.ok);
  EXPECT_FALSE(result.refused);
}

TEST(BindingLinearizabilityTest, NotFoundRemoveRacingUpsertMayLeaveTheBinding) {
  std::vector<BindingOperation> history = {
      Upsert("sip:alice@example.com", /*created=*/true, 1, 0, 10),
      Remove("sip:alice@example.com", /*ok=*/false, 0, 10),
      Get("sip:alice@example.com", 1, 11, 12),
  };
  EXPECT_TRUE(CheckBindings(history).ok);
  history[2] = Get("sip:alice@example.com", std::nullopt, 11, 12);
  EXPECT_FALSE(CheckBindings(history).ok);
}

TEST(BindingLinearizabilityTest, TimedOutUpsertMayOrMayNotHaveCreated) {
  // The first registration timed out; the retry says whether it had taken effect. Both are fine...
  for (bool first_took_effect : {true, false}) {
    LinearizabilityResult result = CheckBindings({
        Upsert("sip:alice@example.com", /*created=*/false, 0, 0, std::nullopt),
        Upsert("sip:alice@example.com", /*created=*/!first_took_effect, first_took_effect ? 2 : 1, 20, 21),
    });
    EXPECT_TRUE(result.ok) << "first_took_effect=" << first_took_effect << ": " << result.explanation;
    if (first_took_effect) {
      EXPECT_THAT(result.order, ElementsAre(0, 1));
    } else {
      EXPECT_THAT(result.order, Not(Contains(0)));
    }
  }
  // ...but the timed-out upsert takes effect at most once: version 3 needs a third upsert.
  LinearizabilityResult result = CheckBindings({
      Upsert("sip:alice@example.com", /*created=*/false, 0, 0, std::nullopt),
      Upsert("sip:alice@example.com", /*created=*/false, 3, 20, 21),
  });
  EXPECT_FALSE(result.ok);
  EXPECT_FALSE(result.refused);
}

TEST(BindingLinearizabilityTest, TimedOutOperationsRecordedResultIsIgnored) {
  // Whatever the recorder left in an unanswered operation's result (here a version that never existed)
  // must not stop it from taking effect.
  LinearizabilityResult result = CheckBindings({
      Upsert("sip:alice@example.com", /*created=*/true, 99, 0, std::nullopt),
      Get("sip:alice@example.com", 1, 5, 6),
  });
  EXPECT_TRUE(result.ok) << result.explanation;
  EXPECT_THAT(result.order, ElementsAre(0, 1));
}

}  // namespace
}  // namespace latchkey
