#pragma once
// The rules every BindingStore keeps (services/control/store/binding_store.h), as one parameterized
// suite: instantiated for the in-memory store here (memory_binding_store_test.cc) and for the Redis
// store against a real redis-server (tests/integration/redis_store_test.cc).
#include <atomic>
#include <functional>
#include <ostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/time/proto_time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/control/store/binding_store.h"

namespace latchkey::control::contract {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

BindingIdentity Identity(const std::string& owner, const std::string& aor, const std::string& contact = "c:sip:x@10.0.0.1") {
  BindingIdentity identity;
  identity.owner = owner;
  identity.aor = aor;
  identity.contact = contact;
  return identity;
}

v1::Binding Candidate(const std::string& id, const std::string& aor, absl::Time expires_at, uint32_t source_port = 40000) {
  v1::Binding binding;
  binding.set_binding_id(id);
  binding.set_aor(aor);
  binding.set_contact("<sip:x@10.0.0.1>");
  binding.mutable_source()->set_ip("203.0.113.5");
  binding.mutable_source()->set_port(source_port);
  *binding.mutable_created_at() = ToProto(expires_at - absl::Seconds(90));
  *binding.mutable_expires_at() = ToProto(expires_at);
  return binding;
}

BindingLimits Limits(uint64_t total, uint64_t per_owner) {
  BindingLimits limits;
  limits.max_total = total;
  limits.max_per_owner = per_owner;
  return limits;
}

std::vector<std::string> Ids(const std::vector<v1::Binding>& bindings) {
  std::vector<std::string> ids;
  for (const v1::Binding& b : bindings) ids.push_back(b.binding_id());
  return ids;
}

BindingFilter OwnerFilter(const std::string& owner, const std::string& aor = "") {
  BindingFilter filter;
  filter.owner = owner;
  filter.aor = aor;
  return filter;
}

// A store for one test: empty, and not shared with any other test. `skip_reason` (when it returns
// non-empty) skips the test instead, e.g. without a Redis server to run against.
struct BindingStoreFactory {
  std::string name;
  // A fresh store whose change log keeps about `log_length` entries.
  std::function<std::unique_ptr<BindingStore>(uint64_t log_length)> make;
  std::function<std::string()> skip_reason = [] { return std::string(); };
};
// gtest prints the parameter in test names and failures: its name, not its bytes.
inline void PrintTo(const BindingStoreFactory& factory, std::ostream* os) { *os << factory.name; }

class BindingStoreContract : public ::testing::TestWithParam<BindingStoreFactory> {
 protected:
  void SetUp() override {
    if (const std::string reason = GetParam().skip_reason(); !reason.empty()) GTEST_SKIP() << reason;
    store_ = GetParam().make(kDefaultLogLength);
    ASSERT_NE(store_, nullptr) << "no " << GetParam().name << " store";
  }
  // The entries logged since `*position`, which moves past them.
  static std::vector<BindingLogEntry> ReadAll(BindingStore& store, std::string* position) {
    std::vector<BindingLogEntry> out;
    for (int pages = 0; pages < 1000; ++pages) {
      auto page = store.ReadLog(*position, 7);  // small pages: paging is part of what is tested
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok() || page->entries.empty()) break;
      for (auto& entry : page->entries) out.push_back(std::move(entry.value));
      *position = page->next;
    }
    return out;
  }
  std::unique_ptr<BindingStore> store_;
};

TEST_P(BindingStoreContract, CreateThenRefreshKeepsIdOwnerCreationAndReachability) {
  BindingStore& store = *store_;
  auto created = store.Upsert(Identity("pbx/a", "sip:alice@x"), Candidate("b1", "sip:alice@x", kT0), {});
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(created->previous.has_value());
  EXPECT_EQ(created->current.version(), 1u);
  EXPECT_EQ(created->current.owner(), "pbx/a");
  ASSERT_TRUE(store.SetReachability("b1", v1::REACHABILITY_UNREACHABLE).ok());

  v1::Binding refresh = Candidate("b-other", "sip:alice@x", kT0 + absl::Seconds(60), 40001);
  *refresh.mutable_created_at() = ToProto(kT0 + absl::Hours(1));
  refresh.set_owner("pbx/forged");
  auto refreshed = store.Upsert(Identity("pbx/a", "sip:alice@x"), refresh, {});
  ASSERT_TRUE(refreshed.ok()) << refreshed.status();
  ASSERT_TRUE(refreshed->previous.has_value());
  EXPECT_EQ(refreshed->previous->version(), 2u);
  const v1::Binding& now = refreshed->current;
  EXPECT_EQ(now.binding_id(), "b1");
  EXPECT_EQ(now.owner(), "pbx/a");
  EXPECT_EQ(FromProto(now.created_at()), kT0 - absl::Seconds(90));
  EXPECT_EQ(now.reachability(), v1::REACHABILITY_UNREACHABLE);
  EXPECT_EQ(now.source_changes(), 1u);
  EXPECT_EQ(now.source().port(), 40001u);
  EXPECT_EQ(now.version(), 3u);
  EXPECT_EQ(*store.Count(), 1u);
  EXPECT_EQ(store.Get("b-other").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(BindingStoreContract, TheSameContactFromAnotherOwnerIsAnotherBinding) {
  BindingStore& store = *store_;
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:alice@x"), Candidate("b1", "sip:alice@x", kT0), {}).ok());
  auto other = store.Upsert(Identity("pbx/b", "sip:alice@x"), Candidate("b2", "sip:alice@x", kT0), {});
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->previous.has_value());
  EXPECT_EQ(*store.Count(), 2u);
}

TEST_P(BindingStoreContract, ATakenIdIsAlreadyExistsAndChangesNothing) {
  BindingStore& store = *store_;
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:alice@x"), Candidate("b1", "sip:alice@x", kT0), {}).ok());
  auto clash = store.Upsert(Identity("pbx/a", "sip:bob@x"), Candidate("b1", "sip:bob@x", kT0), {});
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(*store.Count(), 1u);
  EXPECT_EQ(store.Get("b1")->aor(), "sip:alice@x");
  auto page = store.List(OwnerFilter("pbx/a"), "", 10);
  EXPECT_THAT(Ids(page->bindings), ElementsAre("b1"));
}

TEST_P(BindingStoreContract, LimitsRefuseNewBindingsButNotRefreshes) {
  BindingStore& store = *store_;
  const BindingLimits limits = Limits(3, 2);
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:1@x"), Candidate("b1", "sip:1@x", kT0), limits).ok());
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:2@x"), Candidate("b2", "sip:2@x", kT0), limits).ok());
  auto over_quota = store.Upsert(Identity("pbx/a", "sip:3@x"), Candidate("b3", "sip:3@x", kT0), limits);
  EXPECT_EQ(over_quota.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(over_quota.status().message()), HasSubstr("max_bindings_per_pbx"));
  // Operators and the plaintext caller are bounded by the total only.
  ASSERT_TRUE(store.Upsert(Identity("operator/ops", "sip:3@x"), Candidate("b3", "sip:3@x", kT0), limits).ok());
  auto full = store.Upsert(Identity("pbx/b", "sip:4@x"), Candidate("b4", "sip:4@x", kT0), limits);
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(full.status().message()), HasSubstr("max_bindings:"));
  // A refresh at the limits is fine and costs nothing.
  EXPECT_TRUE(store.Upsert(Identity("pbx/a", "sip:1@x"), Candidate("bx", "sip:1@x", kT0), limits).ok());
  // Removing one gives its owner's place back.
  ASSERT_TRUE(store.Remove("b2", std::string("pbx/a")).ok());
  EXPECT_TRUE(store.Upsert(Identity("pbx/a", "sip:5@x"), Candidate("b5", "sip:5@x", kT0), limits).ok());
}

TEST_P(BindingStoreContract, RemoveChecksTheOwnerAndForgetsTheIdentity) {
  BindingStore& store = *store_;
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:alice@x"), Candidate("b1", "sip:alice@x", kT0), {}).ok());
  EXPECT_EQ(store.Remove("b1", std::string("pbx/b")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(store.Get("b1").ok());
  auto removed = store.Remove("b1", std::nullopt);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->binding_id(), "b1");
  EXPECT_EQ(store.Remove("b1", std::nullopt).status().code(), absl::StatusCode::kNotFound);
  // The identity is free again: the next upsert creates.
  auto again = store.Upsert(Identity("pbx/a", "sip:alice@x"), Candidate("b2", "sip:alice@x", kT0), {});
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->previous.has_value());
}

TEST_P(BindingStoreContract, RemoveIdentityRemovesOnlyThatIdentity) {
  BindingStore& store = *store_;
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:alice@x"), Candidate("b1", "sip:alice@x", kT0), {}).ok());
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:alice@x", "i:urn:1"), Candidate("b2", "sip:alice@x", kT0), {}).ok());
  EXPECT_EQ(store.RemoveIdentity(Identity("pbx/b", "sip:alice@x")).status().code(), absl::StatusCode::kNotFound);
  auto removed = store.RemoveIdentity(Identity("pbx/a", "sip:alice@x"));
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(removed->binding_id(), "b1");
  EXPECT_TRUE(store.Get("b2").ok());
  EXPECT_EQ(*store.Count(), 1u);
}

TEST_P(BindingStoreContract, SetReachabilityReportsOnlyChangesAndNeverRevives) {
  BindingStore& store = *store_;
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:alice@x"), Candidate("b1", "sip:alice@x", kT0), {}).ok());
  auto changed = store.SetReachability("b1", v1::REACHABILITY_UNREACHABLE);
  ASSERT_TRUE(changed.ok());
  ASSERT_TRUE(changed->has_value());
  EXPECT_EQ((*changed)->version(), 2u);
  auto same = store.SetReachability("b1", v1::REACHABILITY_UNREACHABLE);
  ASSERT_TRUE(same.ok());
  EXPECT_FALSE(same->has_value());
  ASSERT_TRUE(store.Remove("b1", std::nullopt).ok());
  auto late = store.SetReachability("b1", v1::REACHABILITY_REACHABLE);
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(late->has_value());
  EXPECT_EQ(store.Get("b1").status().code(), absl::StatusCode::kNotFound);
}

// A page token is the caller's to forge: one naming another owner's range reads nothing of it.
TEST_P(BindingStoreContract, ACursorOutsideTheListingsRangeIsRefused) {
  BindingStore& store = *store_;
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:a@x"), Candidate("b1", "sip:a@x", kT0), {}).ok());
  ASSERT_TRUE(store.Upsert(Identity("pbx/b", "sip:b@x"), Candidate("b2", "sip:b@x", kT0), {}).ok());
  const std::string into_a = std::string("pbx/a") + '\x1f';
  for (const std::string& forged : {into_a, std::string("pbx/"), std::string("a")}) {
    auto page = store.List(OwnerFilter("pbx/b"), forged, 10);
    EXPECT_EQ(page.status().code(), absl::StatusCode::kInvalidArgument) << forged;
  }
  auto own = store.List(OwnerFilter("pbx/b"), "", 10);
  ASSERT_TRUE(own.ok());
  EXPECT_THAT(Ids(own->bindings), ElementsAre("b2"));
}

TEST_P(BindingStoreContract, ListReadsAnOwnersRangeInIdentityOrderWithPages) {
  BindingStore& store = *store_;
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:c@x"), Candidate("b3", "sip:c@x", kT0), {}).ok());
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:a@x"), Candidate("b1", "sip:a@x", kT0), {}).ok());
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:b@x"), Candidate("b2", "sip:b@x", kT0), {}).ok());
  ASSERT_TRUE(store.Upsert(Identity("pbx/ab", "sip:a@x"), Candidate("b9", "sip:a@x", kT0), {}).ok());

  auto first = store.List(OwnerFilter("pbx/a"), "", 2);
  ASSERT_TRUE(first.ok());
  EXPECT_THAT(Ids(first->bindings), ElementsAre("b1", "b2"));
  ASSERT_FALSE(first->next_cursor.empty());
  auto second = store.List(OwnerFilter("pbx/a"), first->next_cursor, 2);
  EXPECT_THAT(Ids(second->bindings), ElementsAre("b3"));
  EXPECT_THAT(second->next_cursor, IsEmpty());

  EXPECT_THAT(Ids(store.List(OwnerFilter("pbx/a", "sip:b@x"), "", 10)->bindings), ElementsAre("b2"));
  // Without an owner: everyone's, optionally one AOR.
  EXPECT_THAT(Ids(store.List(BindingFilter(), "", 10)->bindings), ElementsAre("b1", "b2", "b3", "b9"));
  BindingFilter any_owner;
  any_owner.aor = "sip:a@x";
  EXPECT_THAT(Ids(store.List(any_owner, "", 10)->bindings), ElementsAre("b1", "b9"));
}

TEST_P(BindingStoreContract, TakeExpiredTakesWhatIsDueOnceEarliestFirst) {
  BindingStore& store = *store_;
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:late@x"), Candidate("b3", "sip:late@x", kT0 + absl::Seconds(30)), {}).ok());
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:early@x"), Candidate("b1", "sip:early@x", kT0 + absl::Seconds(10)), {}).ok());
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:mid@x"), Candidate("b2", "sip:mid@x", kT0 + absl::Seconds(20)), {}).ok());
  // A refresh moves b2's expiry: its old deadline no longer applies.
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:mid@x"), Candidate("bx", "sip:mid@x", kT0 + absl::Seconds(100)), {}).ok());

  EXPECT_THAT(Ids(*store.TakeExpired(kT0, 10)), IsEmpty());
  EXPECT_THAT(Ids(*store.TakeExpired(kT0 + absl::Seconds(30), 1)), ElementsAre("b1"));
  EXPECT_THAT(Ids(*store.TakeExpired(kT0 + absl::Seconds(30), 10)), ElementsAre("b3"));
  EXPECT_THAT(Ids(*store.TakeExpired(kT0 + absl::Seconds(30), 10)), IsEmpty());
  EXPECT_EQ(*store.Count(), 1u);
  // Taken means gone, with its identity and its owner's count.
  auto recreated = store.Upsert(Identity("pbx/a", "sip:early@x"), Candidate("b4", "sip:early@x", kT0), Limits(10, 2));
  ASSERT_TRUE(recreated.ok()) << recreated.status();
  EXPECT_FALSE(recreated->previous.has_value());
}

// Replicas refreshing one identity at once: one binding, every refresh counted exactly once.
TEST_P(BindingStoreContract, ConcurrentUpsertsOfOneIdentityMakeOneBinding) {
  BindingStore& store = *store_;
  constexpr int kThreads = 4;
  constexpr int kEach = 50;
  std::atomic<int> created{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto change = store.Upsert(Identity("pbx/a", "sip:alice@x"),
                                   Candidate(absl::StrCat("b", t, "-", i), "sip:alice@x", kT0), Limits(100, 100));
        if (!change.ok()) {
          ++failed;
        } else if (!change->previous) {
          ++created;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(*store.Count(), 1u);
  auto page = store.List(OwnerFilter("pbx/a"), "", 10);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->bindings.size(), 1u);
  EXPECT_EQ(page->bindings[0].version(), static_cast<uint64_t>(kThreads * kEach));
}

// --- The change log.

TEST_P(BindingStoreContract, EveryChangeIsLoggedInOrderWithItsTypeAndRecord) {
  BindingStore& store = *store_;
  std::string position = store.LogTail().value();
  const BindingIdentity alice = Identity("pbx/a", "sip:alice@x");
  ASSERT_TRUE(store.Upsert(alice, Candidate("b1", "sip:alice@x", kT0), {}).ok());
  ASSERT_TRUE(store.Upsert(alice, Candidate("b-other", "sip:alice@x", kT0 + absl::Seconds(60)), {}).ok());
  ASSERT_TRUE(store.Upsert(alice, Candidate("b-other", "sip:alice@x", kT0 + absl::Seconds(60), 40001), {}).ok());
  ASSERT_TRUE(store.SetReachability("b1", v1::REACHABILITY_UNREACHABLE).ok());
  ASSERT_TRUE(store.SetReachability("b1", v1::REACHABILITY_UNREACHABLE).ok());  // no change: not logged
  ASSERT_TRUE(store.SetReachability("b1", v1::REACHABILITY_REACHABLE).ok());
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:bob@x"), Candidate("b2", "sip:bob@x", kT0), {}).ok());
  ASSERT_TRUE(store.Remove("b1", std::nullopt).ok());
  ASSERT_TRUE(store.RemoveIdentity(Identity("pbx/a", "sip:bob@x")).ok());
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:carol@x"), Candidate("b3", "sip:carol@x", kT0), {}).ok());
  ASSERT_EQ(store.TakeExpired(kT0 + absl::Seconds(1), 10).value().size(), 1u);
  // Refused changes log nothing.
  EXPECT_FALSE(store.Upsert(Identity("pbx/a", "sip:dave@x"), Candidate("b4", "sip:dave@x", kT0), Limits(0, 0)).ok());
  EXPECT_FALSE(store.Remove("b-missing", std::nullopt).ok());

  const std::vector<BindingLogEntry> log = ReadAll(store, &position);
  std::vector<v1::BindingEventType> types;
  std::vector<std::string> ids;
  for (const BindingLogEntry& e : log) {
    types.push_back(e.type);
    ids.push_back(e.binding.binding_id());
  }
  EXPECT_THAT(types, ElementsAre(v1::BINDING_EVENT_TYPE_CREATED, v1::BINDING_EVENT_TYPE_REFRESHED,
                                 v1::BINDING_EVENT_TYPE_SOURCE_CHANGED, v1::BINDING_EVENT_TYPE_UNREACHABLE,
                                 v1::BINDING_EVENT_TYPE_REACHABLE, v1::BINDING_EVENT_TYPE_CREATED,
                                 v1::BINDING_EVENT_TYPE_RELEASED, v1::BINDING_EVENT_TYPE_RELEASED,
                                 v1::BINDING_EVENT_TYPE_CREATED, v1::BINDING_EVENT_TYPE_EXPIRED));
  EXPECT_THAT(ids, ElementsAre("b1", "b1", "b1", "b1", "b1", "b2", "b1", "b2", "b3", "b3"));
  ASSERT_EQ(log.size(), 10u);
  // Each entry carries the record as the change left it (as it was, for a removal).
  EXPECT_EQ(log[2].binding.version(), 3u);
  EXPECT_EQ(log[2].binding.source_changes(), 1u);
  EXPECT_EQ(log[2].binding.source().port(), 40001u);
  EXPECT_EQ(log[3].binding.reachability(), v1::REACHABILITY_UNREACHABLE);
  EXPECT_EQ(log[6].binding.owner(), "pbx/a");
  EXPECT_EQ(log[6].binding.aor(), "sip:alice@x");
  EXPECT_LT(absl::AbsDuration(absl::Now() - log[0].time), absl::Minutes(1));
  // Read to the end: nothing more, and the position stays.
  const std::string end = position;
  EXPECT_TRUE(ReadAll(store, &position).empty());
  EXPECT_EQ(position, end);
  EXPECT_EQ(store.LogTail().value(), end);
}

TEST_P(BindingStoreContract, APositionTheLogDoesNotHoldIsOutOfRange) {
  BindingStore& store = *store_;
  ASSERT_TRUE(store.Upsert(Identity("pbx/a", "sip:alice@x"), Candidate("b1", "sip:alice@x", kT0), {}).ok());
  for (const char* bogus : {"", "garbage", "m1.1", "99999999999999-0", "1-0x"}) {
    auto page = store.ReadLog(bogus, 10);
    EXPECT_EQ(page.status().code(), absl::StatusCode::kOutOfRange) << "\"" << bogus << "\": " << page.status();
    EXPECT_THAT(std::string(page.status().message()), HasSubstr("resume_token"));
  }
}

TEST_P(BindingStoreContract, AReaderOlderThanTheLogKeepsIsOutOfRange) {
  std::unique_ptr<BindingStore> store = GetParam().make(10);
  ASSERT_NE(store, nullptr);
  const std::string start = store->LogTail().value();
  std::string position = start;
  ASSERT_TRUE(store->Upsert(Identity("pbx/a", "sip:alice@x"), Candidate("b1", "sip:alice@x", kT0), {}).ok());
  ASSERT_EQ(ReadAll(*store, &position).size(), 1u);
  // Enough changes to trim past both positions, however coarsely the log trims (Redis: whole nodes).
  for (int i = 0; i < 600; ++i) {
    ASSERT_TRUE(store->SetReachability("b1", i % 2 ? v1::REACHABILITY_REACHABLE : v1::REACHABILITY_UNREACHABLE).ok());
  }
  EXPECT_EQ(store->ReadLog(start, 10).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(store->ReadLog(position, 10).status().code(), absl::StatusCode::kOutOfRange);
  // The tail is still readable from.
  auto tail = store->ReadLog(store->LogTail().value(), 10);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_TRUE(tail->entries.empty());
}

}  // namespace latchkey::control::contract
