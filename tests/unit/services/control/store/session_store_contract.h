#pragma once
// The rules every SessionStore keeps (services/control/store/session_store.h), as one parameterized
// suite: instantiated for the in-memory store (memory_session_store_test.cc) and for the Redis store
// against a real redis-server (tests/integration/redis_store_test.cc).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <ostream>
#include <memory>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/time/proto_time.h"
#include "services/control/store/session_store.h"

namespace latchkey::control::session_contract {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

v1::Session Live(const std::string& id, const std::string& owner = "pbx/a", const std::string& call_id = "",
                 const std::string& from_tag = "ft", const std::string& worker_id = "w1") {
  v1::Session session;
  session.set_session_id(id);
  session.set_owner(owner);
  session.set_call_id(call_id.empty() ? "call-" + id : call_id);
  session.mutable_caller()->set_tag(from_tag);
  session.set_worker_id(worker_id);
  session.set_state(v1::SESSION_STATE_OFFERED);
  return session;
}

v1::Session Ended(v1::Session session) {
  session.set_state(v1::SESSION_STATE_ENDED);
  session.set_end_reason(v1::SESSION_EVENT_TYPE_RELEASED);
  return session;
}

SessionWrite Create(absl::Time expires_at = absl::InfiniteFuture(), uint64_t max_live = UINT64_MAX) {
  SessionWrite write;
  write.expected_version = 0;
  write.expires_at = expires_at;
  write.max_live_per_owner = max_live;
  return write;
}

SessionWrite Update(uint64_t expected_version, absl::Time expires_at = absl::InfiniteFuture(),
                    uint64_t max_live = UINT64_MAX) {
  SessionWrite write = Create(expires_at, max_live);
  write.expected_version = expected_version;
  return write;
}

SessionFilter OwnerFilter(const std::string& owner) {
  SessionFilter filter;
  filter.owner = owner;
  return filter;
}

SessionFilter WorkerFilter(const std::string& worker_id) {
  SessionFilter filter;
  filter.worker_id = worker_id;
  return filter;
}

std::vector<std::string> Ids(const std::vector<v1::Session>& sessions) {
  std::vector<std::string> ids;
  for (const v1::Session& s : sessions) ids.push_back(s.session_id());
  return ids;
}

// Every id matching the filter, read page by page.
std::vector<std::string> ListAll(SessionStore& store, const SessionFilter& filter, size_t limit = 1000) {
  std::vector<std::string> ids;
  std::string cursor;
  int pages = 0;
  do {
    if (++pages > 10'000) {
      ADD_FAILURE() << "the listing never ends";
      break;
    }
    auto page = store.List(filter, cursor, limit);
    EXPECT_TRUE(page.ok()) << page.status();
    if (!page.ok()) break;
    for (const v1::Session& s : page->sessions) ids.push_back(s.session_id());
    cursor = page->next_cursor;
  } while (!cursor.empty());
  return ids;
}

std::vector<std::string> ExpiredIds(SessionStore& store, absl::Time now, size_t limit = 100) {
  auto expired = store.ListExpired(now, limit);
  EXPECT_TRUE(expired.ok()) << expired.status();
  return expired.ok() ? Ids(*expired) : std::vector<std::string>{};
}

uint64_t Count(SessionStore& store, const std::string& owner) {
  auto count = store.LiveCount(owner);
  EXPECT_TRUE(count.ok()) << count.status();
  return count.value_or(UINT64_MAX);
}

// Writes and returns the stored session, failing the test on error.
v1::Session MustWrite(SessionStore& store, const v1::Session& session, const SessionWrite& write) {
  auto stored = store.Write(session, write);
  EXPECT_TRUE(stored.ok()) << stored.status();
  return stored.value_or(v1::Session());
}

// A store for one test: empty, and not shared with any other test. `skip_reason` (when it returns
// non-empty) skips the test instead, e.g. without a Redis server to run against.
struct SessionStoreFactory {
  std::string name;
  // A fresh store whose change log keeps about `log_length` entries.
  std::function<std::unique_ptr<SessionStore>(uint64_t log_length)> make;
  std::function<std::string()> skip_reason = [] { return std::string(); };
};
// gtest prints the parameter in test names and failures: its name, not its bytes.
inline void PrintTo(const SessionStoreFactory& factory, std::ostream* os) { *os << factory.name; }

class SessionStoreContract : public ::testing::TestWithParam<SessionStoreFactory> {
 protected:
  void SetUp() override {
    if (const std::string reason = GetParam().skip_reason(); !reason.empty()) GTEST_SKIP() << reason;
    store_ = GetParam().make(kDefaultLogLength);
    ASSERT_NE(store_, nullptr) << "no " << GetParam().name << " store";
  }
  std::unique_ptr<SessionStore> store_;
};

TEST_P(SessionStoreContract, CreateStartsAtVersionOneWhateverTheCallerSent) {
  SessionStore& store = *store_;
  v1::Session session = Live("s1");
  session.set_version(42);
  v1::Session stored = MustWrite(store, session, Create());
  EXPECT_EQ(stored.version(), 1u);
  EXPECT_EQ(stored.call_id(), "call-s1");

  auto got = store.Get("s1");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->version(), 1u);
  EXPECT_EQ(got->owner(), "pbx/a");
  EXPECT_EQ(got->caller().tag(), "ft");
  EXPECT_EQ(got->worker_id(), "w1");
}

TEST_P(SessionStoreContract, EachWriteIncrementsTheStoredVersion) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1"), Create());
  v1::Session answered = Live("s1");
  answered.set_state(v1::SESSION_STATE_ANSWERED);
  answered.set_version(99);  // ignored: the store owns the version
  EXPECT_EQ(MustWrite(store, answered, Update(1)).version(), 2u);
  EXPECT_EQ(MustWrite(store, Ended(answered), Update(2)).version(), 3u);

  auto got = store.Get("s1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->version(), 3u);
  EXPECT_EQ(got->state(), v1::SESSION_STATE_ENDED);
}

TEST_P(SessionStoreContract, CreateOfAnExistingIdIsAlreadyExists) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1"), Create());
  auto again = store.Write(Live("s1", "pbx/a", "other-call"), Create());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(again.status().message(), HasSubstr("\"s1\""));
  EXPECT_EQ(store.Get("s1")->call_id(), "call-s1");
  EXPECT_EQ(store.Get("s1")->version(), 1u);
}

TEST_P(SessionStoreContract, StaleVersionIsAbortedAndChangesNothing) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1"), Create(kT0 + absl::Seconds(30)));
  MustWrite(store, Live("s1"), Update(1, kT0 + absl::Seconds(30)));

  v1::Session late = Ended(Live("s1"));
  late.set_worker_id("w2");
  auto result = store.Write(late, Update(1, kT0 + absl::Seconds(5)));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(result.status().message(), HasSubstr("\"s1\""));
  EXPECT_THAT(result.status().message(), HasSubstr("version 2"));
  EXPECT_THAT(result.status().message(), HasSubstr("not 1"));

  auto got = store.Get("s1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->version(), 2u);
  EXPECT_EQ(got->state(), v1::SESSION_STATE_OFFERED);
  EXPECT_EQ(got->worker_id(), "w1");
  EXPECT_THAT(ListAll(store, WorkerFilter("w1")), ElementsAre("s1"));
  EXPECT_THAT(ListAll(store, WorkerFilter("w2")), IsEmpty());
  EXPECT_EQ(Count(store, "pbx/a"), 1u);
  EXPECT_TRUE(store.FindLive("pbx/a", "call-s1", "ft").ok());
  EXPECT_THAT(ExpiredIds(store, kT0 + absl::Seconds(10)), IsEmpty());
}

TEST_P(SessionStoreContract, WriteOfAMissingSessionIsNotFound) {
  SessionStore& store = *store_;
  auto result = store.Write(Live("s9"), Update(3));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(result.status().message(), "session_id: no session \"s9\"");
  EXPECT_EQ(store.Get("s9").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(SessionStoreContract, RemoveIsVersionedAndDropsEveryIndexEntry) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1"), Create(kT0 + absl::Seconds(10)));
  MustWrite(store, Live("s1"), Update(1, kT0 + absl::Seconds(10)));

  EXPECT_EQ(store.Remove("s1", 1).code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(store.Get("s1").ok());

  ASSERT_TRUE(store.Remove("s1", 2).ok());
  EXPECT_EQ(store.Get("s1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.FindLive("pbx/a", "call-s1", "ft").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(ListAll(store, SessionFilter()), IsEmpty());
  EXPECT_THAT(ListAll(store, OwnerFilter("pbx/a")), IsEmpty());
  EXPECT_THAT(ListAll(store, WorkerFilter("w1")), IsEmpty());
  EXPECT_THAT(ExpiredIds(store, kT0 + absl::Hours(1)), IsEmpty());
  EXPECT_EQ(Count(store, "pbx/a"), 0u);

  EXPECT_EQ(store.Remove("s1", 2).code(), absl::StatusCode::kNotFound);
  // Its call key is free again.
  EXPECT_TRUE(store.Write(Live("s2", "pbx/a", "call-s1"), Create()).ok());
}

TEST_P(SessionStoreContract, TwoLiveSessionsCannotHoldOneCallKey) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1", "pbx/a", "c1", "ft"), Create());

  auto conflict = store.Write(Live("s2", "pbx/a", "c1", "ft"), Create());
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(conflict.status().message(), HasSubstr("\"s1\""));
  EXPECT_EQ(store.Get("s2").status().code(), absl::StatusCode::kNotFound);

  // Another tag, call or owner is another key.
  EXPECT_TRUE(store.Write(Live("s3", "pbx/a", "c1", "other-tag"), Create()).ok());
  EXPECT_TRUE(store.Write(Live("s4", "pbx/a", "c2", "ft"), Create()).ok());
  EXPECT_TRUE(store.Write(Live("s5", "pbx/b", "c1", "ft"), Create()).ok());

  // An existing session moving onto a held key is refused too.
  auto moved = store.Write(Live("s4", "pbx/a", "c1", "ft"), Update(1));
  EXPECT_EQ(moved.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(moved.status().message(), HasSubstr("\"s1\""));
  EXPECT_EQ(store.Get("s4")->call_id(), "c2");
}

TEST_P(SessionStoreContract, EndingASessionFreesItsCallKey) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1", "pbx/a", "c1", "ft"), Create());
  MustWrite(store, Ended(Live("s1", "pbx/a", "c1", "ft")), Update(1));

  EXPECT_TRUE(store.Write(Live("s2", "pbx/a", "c1", "ft"), Create()).ok());
  auto holder = store.FindLive("pbx/a", "c1", "ft");
  ASSERT_TRUE(holder.ok());
  EXPECT_EQ(holder->session_id(), "s2");

  // Now s1 cannot come back to life on the key s2 holds.
  auto revive = store.Write(Live("s1", "pbx/a", "c1", "ft"), Update(2));
  EXPECT_EQ(revive.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(revive.status().message(), HasSubstr("\"s2\""));
}

TEST_P(SessionStoreContract, FindLiveReturnsOnlyTheLiveHolder) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1", "pbx/a", "c1", "ft"), Create());
  MustWrite(store, Live("s2", "pbx/a", "c2", "ft"), Create());
  MustWrite(store, Ended(Live("s2", "pbx/a", "c2", "ft")), Update(1));

  auto found = store.FindLive("pbx/a", "c1", "ft");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->session_id(), "s1");
  EXPECT_EQ(found->version(), 1u);

  EXPECT_EQ(store.FindLive("pbx/a", "c2", "ft").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.FindLive("pbx/b", "c1", "ft").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store.FindLive("pbx/a", "c1", "other").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(SessionStoreContract, BranchesOfOneCallKeyAreHeldApart) {
  SessionStore& store = *store_;
  v1::Session fork1 = Live("s1", "pbx/a", "c1", "ft");
  fork1.set_branch("b1");
  v1::Session fork2 = Live("s2", "pbx/a", "c1", "ft");
  fork2.set_branch("b2");
  MustWrite(store, fork1, Create());
  MustWrite(store, fork2, Create());
  EXPECT_EQ(store.FindLive("pbx/a", "c1", "ft", "b1")->session_id(), "s1");
  EXPECT_EQ(store.FindLive("pbx/a", "c1", "ft", "b2")->session_id(), "s2");
  EXPECT_EQ(store.FindLive("pbx/a", "c1", "ft").status().code(), absl::StatusCode::kNotFound);
  // The same branch twice is the same key.
  v1::Session again = fork1;
  again.set_session_id("s3");
  EXPECT_EQ(store.Write(again, Create()).status().code(), absl::StatusCode::kAlreadyExists);
}

TEST_P(SessionStoreContract, TheCallIndexListsEveryLiveSessionOfOneCallId) {
  SessionStore& store = *store_;
  v1::Session fork1 = Live("s1", "pbx/a", "c1", "ft");
  fork1.set_branch("b1");
  v1::Session fork2 = Live("s2", "pbx/a", "c1", "ft");
  fork2.set_branch("b2");
  MustWrite(store, fork1, Create());
  MustWrite(store, fork2, Create());
  MustWrite(store, Live("s3", "pbx/a", "c1", "other-tag"), Create());
  MustWrite(store, Live("s4", "pbx/b", "c1", "ft"), Create());  // another owner's call
  MustWrite(store, Live("s5", "pbx/a", "c2", "ft"), Create());
  auto ids = [&](const std::string& owner, const std::string& call_id, size_t limit) {
    std::vector<std::string> out;
    auto listed = store.ListLiveCall(owner, call_id, limit);
    EXPECT_TRUE(listed.ok()) << listed.status();
    if (listed.ok()) {
      for (const v1::Session& s : *listed) out.push_back(s.session_id());
    }
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_THAT(ids("pbx/a", "c1", 10), ElementsAre("s1", "s2", "s3"));
  EXPECT_EQ(ids("pbx/a", "c1", 2).size(), 2u);
  EXPECT_THAT(ids("pbx/b", "c1", 10), ElementsAre("s4"));
  // Ending a session takes it out; removing the last empties the call.
  MustWrite(store, Ended(fork2), Update(1));
  EXPECT_THAT(ids("pbx/a", "c1", 10), ElementsAre("s1", "s3"));
  ASSERT_TRUE(store.Remove("s5", 1).ok());
  EXPECT_THAT(ids("pbx/a", "c2", 10), IsEmpty());
}

TEST_P(SessionStoreContract, WorkerIndexFollowsWorkerIdAndDropsEndedSessions) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1", "pbx/a", "", "ft", "w1"), Create());
  MustWrite(store, Live("s2", "pbx/a", "", "ft", "w1"), Create());
  EXPECT_THAT(ListAll(store, WorkerFilter("w1")), ElementsAre("s1", "s2"));

  MustWrite(store, Live("s1", "pbx/a", "", "ft", "w2"), Update(1));
  EXPECT_THAT(ListAll(store, WorkerFilter("w1")), ElementsAre("s2"));
  EXPECT_THAT(ListAll(store, WorkerFilter("w2")), ElementsAre("s1"));

  MustWrite(store, Ended(Live("s2", "pbx/a", "", "ft", "w1")), Update(1));
  EXPECT_THAT(ListAll(store, WorkerFilter("w1")), IsEmpty());

  // Revived on another worker: listed there.
  MustWrite(store, Live("s2", "pbx/a", "", "ft", "w3"), Update(2));
  EXPECT_THAT(ListAll(store, WorkerFilter("w3")), ElementsAre("s2"));
  EXPECT_THAT(ListAll(store, WorkerFilter("w1")), IsEmpty());
}

TEST_P(SessionStoreContract, OwnerListIncludesEndedSessions) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1", "pbx/a"), Create());
  MustWrite(store, Live("s2", "pbx/b"), Create());
  MustWrite(store, Ended(Live("s3", "pbx/a")), Create());
  MustWrite(store, Live("s4", "pbx/a"), Create());
  MustWrite(store, Ended(Live("s4", "pbx/a")), Update(1));
  MustWrite(store, Live("s5", ""), Create());

  EXPECT_THAT(ListAll(store, OwnerFilter("pbx/a")), ElementsAre("s1", "s3", "s4"));
  EXPECT_THAT(ListAll(store, OwnerFilter("pbx/b")), ElementsAre("s2"));
  // An empty owner (a plaintext server) is an owner like any other, not "no filter".
  EXPECT_THAT(ListAll(store, OwnerFilter("")), ElementsAre("s5"));
  EXPECT_THAT(ListAll(store, OwnerFilter("pbx/none")), IsEmpty());
  EXPECT_THAT(ListAll(store, SessionFilter()), ElementsAre("s1", "s2", "s3", "s4", "s5"));
}

TEST_P(SessionStoreContract, LiveCountIsLimitedForPbxOwnersOnly) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1", "pbx/a"), Create(absl::InfiniteFuture(), 2));
  MustWrite(store, Live("s2", "pbx/a"), Create(absl::InfiniteFuture(), 2));
  EXPECT_EQ(Count(store, "pbx/a"), 2u);

  auto over = store.Write(Live("s3", "pbx/a"), Create(absl::InfiniteFuture(), 2));
  EXPECT_EQ(over.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(over.status().message(), "max_sessions_per_pbx: pbx/a holds 2 live sessions, its quota");
  EXPECT_EQ(store.Get("s3").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Count(store, "pbx/a"), 2u);

  // Another PBX has its own count.
  EXPECT_TRUE(store.Write(Live("s4", "pbx/b"), Create(absl::InfiniteFuture(), 2)).ok());
  EXPECT_EQ(Count(store, "pbx/b"), 1u);

  // Operators and plaintext callers are neither limited nor counted.
  EXPECT_TRUE(store.Write(Live("s5", "operator/x"), Create(absl::InfiniteFuture(), 0)).ok());
  EXPECT_TRUE(store.Write(Live("s6", ""), Create(absl::InfiniteFuture(), 0)).ok());
  EXPECT_TRUE(store.Write(Live("s7", "pbxa"), Create(absl::InfiniteFuture(), 0)).ok());
  EXPECT_EQ(Count(store, "operator/x"), 0u);
  EXPECT_EQ(Count(store, ""), 0u);
  EXPECT_EQ(Count(store, "pbxa"), 0u);
}

TEST_P(SessionStoreContract, UpdatesOfALiveSessionAreNotChargedAgain) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1"), Create(absl::InfiniteFuture(), 1));
  v1::Session answered = Live("s1");
  answered.set_state(v1::SESSION_STATE_ANSWERED);
  // At its limit, the owner can still update what it holds.
  EXPECT_TRUE(store.Write(answered, Update(1, absl::InfiniteFuture(), 1)).ok());
  EXPECT_TRUE(store.Write(answered, Update(2, absl::InfiniteFuture(), 1)).ok());
  EXPECT_EQ(Count(store, "pbx/a"), 1u);
  // An ended session written again while ended is not counted either.
  MustWrite(store, Ended(answered), Update(3));
  MustWrite(store, Ended(answered), Update(4));
  EXPECT_EQ(Count(store, "pbx/a"), 0u);
}

TEST_P(SessionStoreContract, LiveCountIsReleasedOnEndAndOnRemove) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1"), Create(absl::InfiniteFuture(), 2));
  MustWrite(store, Live("s2"), Create(absl::InfiniteFuture(), 2));
  EXPECT_EQ(Count(store, "pbx/a"), 2u);

  MustWrite(store, Ended(Live("s1")), Update(1));
  EXPECT_EQ(Count(store, "pbx/a"), 1u);
  // The freed place can be taken.
  MustWrite(store, Live("s3"), Create(absl::InfiniteFuture(), 2));
  EXPECT_EQ(Count(store, "pbx/a"), 2u);

  ASSERT_TRUE(store.Remove("s2", 1).ok());
  EXPECT_EQ(Count(store, "pbx/a"), 1u);
  // Removing an ended session gives back nothing: it held nothing.
  ASSERT_TRUE(store.Remove("s1", 2).ok());
  EXPECT_EQ(Count(store, "pbx/a"), 1u);
  ASSERT_TRUE(store.Remove("s3", 1).ok());
  EXPECT_EQ(Count(store, "pbx/a"), 0u);
}

TEST_P(SessionStoreContract, AdoptionPastTheLimitIsAllowedAndCounted) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1"), Create(absl::InfiniteFuture(), 1));
  MustWrite(store, Ended(Live("s2")), Create(absl::InfiniteFuture(), 1));  // an ended one takes no place
  EXPECT_EQ(Count(store, "pbx/a"), 1u);

  // Reviving an ended session is making it live: refused at the limit when a limit is given...
  auto refused = store.Write(Live("s2"), Update(1, absl::InfiniteFuture(), 1));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(store.Get("s2")->state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(Count(store, "pbx/a"), 1u);

  // ...and allowed by adoption, which passes no limit; it is counted all the same.
  v1::Session adopted = MustWrite(store, Live("s2"), Update(1, absl::InfiniteFuture(), UINT64_MAX));
  EXPECT_EQ(adopted.version(), 2u);
  EXPECT_EQ(Count(store, "pbx/a"), 2u);
  // An adopted session control did not know is created live, past the limit too.
  MustWrite(store, Live("s3"), Create(absl::InfiniteFuture(), UINT64_MAX));
  EXPECT_EQ(Count(store, "pbx/a"), 3u);
  // Over the limit, new sessions are still refused, with the count as it is.
  auto over = store.Write(Live("s4"), Create(absl::InfiniteFuture(), 1));
  EXPECT_EQ(over.status().message(), "max_sessions_per_pbx: pbx/a holds 3 live sessions, its quota");

  // Ending them gives back exactly what they took.
  MustWrite(store, Ended(Live("s2")), Update(2));
  MustWrite(store, Ended(Live("s3")), Update(1));
  EXPECT_EQ(Count(store, "pbx/a"), 1u);
}

TEST_P(SessionStoreContract, ListPagesInIdOrderWithACursor) {
  SessionStore& store = *store_;
  for (const char* id : {"s4", "s2", "s5", "s1", "s3"}) MustWrite(store, Live(id), Create());

  auto first = store.List(SessionFilter(), "", 2);
  ASSERT_TRUE(first.ok());
  EXPECT_THAT(Ids(first->sessions), ElementsAre("s1", "s2"));
  EXPECT_EQ(first->next_cursor, "s2");
  auto second = store.List(SessionFilter(), first->next_cursor, 2);
  ASSERT_TRUE(second.ok());
  EXPECT_THAT(Ids(second->sessions), ElementsAre("s3", "s4"));
  EXPECT_EQ(second->next_cursor, "s4");
  auto last = store.List(SessionFilter(), second->next_cursor, 2);
  ASSERT_TRUE(last.ok());
  EXPECT_THAT(Ids(last->sessions), ElementsAre("s5"));
  EXPECT_EQ(last->next_cursor, "");

  // A page that ends exactly at the last session says so.
  auto exact = store.List(SessionFilter(), "s3", 2);
  ASSERT_TRUE(exact.ok());
  EXPECT_THAT(Ids(exact->sessions), ElementsAre("s4", "s5"));
  EXPECT_EQ(exact->next_cursor, "");

  EXPECT_EQ(store.List(SessionFilter(), "", 0).status().code(), absl::StatusCode::kInvalidArgument);
}

// The written version is at least min_version: an adopted or revived session is stored at the
// version its relay holds.
TEST_P(SessionStoreContract, MinVersionRaisesTheWrittenVersion) {
  SessionStore& store = *store_;
  SessionWrite create = Create();
  create.min_version = 17;
  EXPECT_EQ(MustWrite(store, Live("s1"), create).version(), 17u);
  SessionWrite update = Update(17);
  update.min_version = 5;  // below previous + 1: previous + 1
  EXPECT_EQ(MustWrite(store, Live("s1"), update).version(), 18u);
  SessionWrite jump = Update(18);
  jump.min_version = 40;
  EXPECT_EQ(MustWrite(store, Live("s1"), jump).version(), 40u);
}

// Two filters, a match far beyond the first: every page but the last promises the next, and no
// match is skipped whatever lies between them.
TEST_P(SessionStoreContract, PagesOverTwoFiltersFindMatchesFarApart) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s000", "pbx/a", "c0", "ft", "w1"), Create());
  for (int i = 1; i <= 60; ++i) {
    MustWrite(store, Live(absl::StrCat("s", i < 10 ? "00" : "0", i), "pbx/a", absl::StrCat("c", i), "ft", "w2"), Create());
  }
  MustWrite(store, Live("s100", "pbx/a", "c100", "ft", "w1"), Create());
  SessionFilter both = OwnerFilter("pbx/a");
  both.worker_id = "w1";
  EXPECT_THAT(ListAll(store, both, 1), ElementsAre("s000", "s100"));
}

TEST_P(SessionStoreContract, ListPagesOverFilters) {
  SessionStore& store = *store_;
  // owner / worker / live: a1 w1 live, a2 w2 live, a3 w1 ended, a4 w1 live, b1 w1 live, a5 w1 live.
  MustWrite(store, Live("a1", "pbx/a", "", "ft", "w1"), Create());
  MustWrite(store, Live("a2", "pbx/a", "", "ft", "w2"), Create());
  MustWrite(store, Ended(Live("a3", "pbx/a", "", "ft", "w1")), Create());
  MustWrite(store, Live("a4", "pbx/a", "", "ft", "w1"), Create());
  MustWrite(store, Live("b1", "pbx/b", "", "ft", "w1"), Create());
  MustWrite(store, Live("a5", "pbx/a", "", "ft", "w1"), Create());

  auto page = store.List(OwnerFilter("pbx/a"), "", 2);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(Ids(page->sessions), ElementsAre("a1", "a2"));
  EXPECT_EQ(page->next_cursor, "a2");
  page = store.List(OwnerFilter("pbx/a"), page->next_cursor, 2);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(Ids(page->sessions), ElementsAre("a3", "a4"));
  EXPECT_EQ(page->next_cursor, "a4");
  page = store.List(OwnerFilter("pbx/a"), page->next_cursor, 2);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(Ids(page->sessions), ElementsAre("a5"));
  EXPECT_EQ(page->next_cursor, "");

  EXPECT_THAT(ListAll(store, WorkerFilter("w1"), 1), ElementsAre("a1", "a4", "a5", "b1"));
  EXPECT_THAT(ListAll(store, WorkerFilter("w2"), 1), ElementsAre("a2"));

  SessionFilter both = OwnerFilter("pbx/a");
  both.worker_id = "w1";
  page = store.List(both, "", 2);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(Ids(page->sessions), ElementsAre("a1", "a4"));
  EXPECT_EQ(page->next_cursor, "a4");
  page = store.List(both, page->next_cursor, 2);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(Ids(page->sessions), ElementsAre("a5"));
  EXPECT_EQ(page->next_cursor, "");
  // Intersections whichever set is the smaller: pbx/b has one session, w1 four.
  SessionFilter b_on_w1 = OwnerFilter("pbx/b");
  b_on_w1.worker_id = "w1";
  EXPECT_THAT(ListAll(store, b_on_w1, 1), ElementsAre("b1"));
  SessionFilter b_on_w2 = OwnerFilter("pbx/b");
  b_on_w2.worker_id = "w2";
  EXPECT_THAT(ListAll(store, b_on_w2, 1), IsEmpty());
  SessionFilter a_on_w2 = OwnerFilter("pbx/a");
  a_on_w2.worker_id = "w2";
  EXPECT_THAT(ListAll(store, a_on_w2, 1), ElementsAre("a2"));
}

TEST_P(SessionStoreContract, ListExpiredIsEarliestFirstLimitedAndLeavesRecordsInPlace) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1"), Create(kT0 + absl::Seconds(30)));
  MustWrite(store, Live("s2"), Create(kT0 + absl::Seconds(10)));
  MustWrite(store, Live("s3"), Create(kT0 + absl::Seconds(20)));
  MustWrite(store, Live("s4"), Create(kT0 + absl::Seconds(40)));
  MustWrite(store, Live("s5"), Create());  // never due

  EXPECT_THAT(ExpiredIds(store, kT0), IsEmpty());
  EXPECT_THAT(ExpiredIds(store, kT0 + absl::Seconds(10)), ElementsAre("s2"));  // at or before now
  EXPECT_THAT(ExpiredIds(store, kT0 + absl::Seconds(35)), ElementsAre("s2", "s3", "s1"));
  EXPECT_THAT(ExpiredIds(store, kT0 + absl::Seconds(35), 2), ElementsAre("s2", "s3"));
  // Listing takes nothing away.
  EXPECT_THAT(ExpiredIds(store, kT0 + absl::Seconds(35)), ElementsAre("s2", "s3", "s1"));
  EXPECT_TRUE(store.Get("s2").ok());
  EXPECT_THAT(ExpiredIds(store, absl::InfiniteFuture()), ElementsAre("s2", "s3", "s1", "s4"));
}

TEST_P(SessionStoreContract, RewrittenExpiryReplacesTheOldOne) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1"), Create(kT0 + absl::Seconds(10)));
  MustWrite(store, Live("s2"), Create(kT0 + absl::Seconds(20)));
  // The sweeper looks again later: the old time no longer lists it.
  MustWrite(store, Live("s1"), Update(1, kT0 + absl::Seconds(100)));
  EXPECT_THAT(ExpiredIds(store, kT0 + absl::Seconds(50)), ElementsAre("s2"));
  // And a write with no expiry takes it off the index.
  MustWrite(store, Live("s2"), Update(1));
  EXPECT_THAT(ExpiredIds(store, kT0 + absl::Seconds(50)), IsEmpty());
  auto due = store.ListExpired(kT0 + absl::Seconds(100), 10);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].session_id(), "s1");
  EXPECT_EQ((*due)[0].version(), 2u);
}

// Everything observable about the store, to compare before and after a refused write.
std::string Snapshot(SessionStore& store) {
  std::string out;
  for (const std::string& id : ListAll(store, SessionFilter())) {
    auto session = store.Get(id);
    absl::StrAppend(&out, id, "=", session.ok() ? session->ShortDebugString() : session.status().ToString(), "\n");
  }
  for (const char* owner : {"pbx/a", "pbx/b"}) {
    absl::StrAppend(&out, owner, ": live ", Count(store, owner), " [",
                    absl::StrJoin(ListAll(store, OwnerFilter(owner)), ","), "]\n");
  }
  for (const char* worker : {"w1", "w2", "w3"}) {
    absl::StrAppend(&out, worker, ": [", absl::StrJoin(ListAll(store, WorkerFilter(worker)), ","), "]\n");
  }
  for (const char* call : {"c1", "c2", "c3", "c4"}) {
    auto holder = store.FindLive("pbx/a", call, "ft");
    absl::StrAppend(&out, call, " held by ", holder.ok() ? holder->session_id() : "none", "\n");
  }
  absl::StrAppend(&out, "expired: ", absl::StrJoin(ExpiredIds(store, absl::InfiniteFuture()), ","), "\n");
  return out;
}

TEST_P(SessionStoreContract, AFailedWriteChangesNothing) {
  SessionStore& store = *store_;
  MustWrite(store, Live("s1", "pbx/a", "c1", "ft", "w1"), Create(kT0 + absl::Seconds(10), 3));
  MustWrite(store, Live("s2", "pbx/a", "c2", "ft", "w1"), Create(kT0 + absl::Seconds(20), 3));
  MustWrite(store, Ended(Live("s3", "pbx/a", "c3", "ft", "w2")), Create(kT0 + absl::Seconds(30), 3));
  MustWrite(store, Live("s4", "pbx/a", "c4", "ft", "w2"), Create(kT0 + absl::Seconds(40), 3));
  const std::string before = Snapshot(store);
  ASSERT_THAT(before, HasSubstr("pbx/a: live 3 [s1,s2,s3,s4]"));

  // Revival onto a held call key, with a new worker and expiry.
  v1::Session onto_held_key = Live("s3", "pbx/a", "c1", "ft", "w3");
  EXPECT_EQ(store.Write(onto_held_key, Update(1, kT0 + absl::Seconds(1))).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Snapshot(store), before);
  // Revival past the limit.
  EXPECT_EQ(store.Write(Live("s3", "pbx/a", "c3", "ft", "w3"), Update(1, kT0 + absl::Seconds(1), 3)).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Snapshot(store), before);
  // Creation past the limit.
  EXPECT_EQ(store.Write(Live("s5", "pbx/a", "c5", "ft", "w3"), Create(kT0 + absl::Seconds(1), 3)).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Snapshot(store), before);
  // Stale end that would free a key, a worker entry, a place and move the expiry.
  v1::Session stale_end = Ended(Live("s1", "pbx/a", "c1", "ft", "w1"));
  EXPECT_EQ(store.Write(stale_end, Update(7, kT0 + absl::Seconds(1))).status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(Snapshot(store), before);
  // Create over an existing id, as another owner.
  EXPECT_EQ(store.Write(Live("s2", "pbx/b", "c9", "ft", "w3"), Create(kT0 + absl::Seconds(1))).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(Snapshot(store), before);
  // Stale and missing removes.
  EXPECT_EQ(store.Remove("s4", 2).code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store.Remove("s9", 1).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Snapshot(store), before);
}

TEST_P(SessionStoreContract, ConcurrentVersionedIncrementsLoseNoUpdate) {
  SessionStore& store = *store_;
  v1::Session initial = Live("s1");
  initial.mutable_updated_at()->set_seconds(0);  // the counter every writer increments
  MustWrite(store, initial, Create());

  constexpr int kThreads = 8;
  constexpr int kIncrementsPerThread = 2000;
  std::latch start(kThreads);  // all threads race from the same moment, not one after another
  std::atomic<int> successes{0};
  std::atomic<int> aborted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int done = 0; done < kIncrementsPerThread;) {
        auto read = store.Get("s1");
        ASSERT_TRUE(read.ok()) << read.status();
        v1::Session next = *read;
        next.mutable_updated_at()->set_seconds(read->updated_at().seconds() + 1);
        std::this_thread::yield();  // widen the read-to-write window so writers do collide
        auto written = store.Write(next, Update(read->version()));
        if (written.ok()) {
          ++done;
          ++successes;
        } else {
          ASSERT_EQ(written.status().code(), absl::StatusCode::kAborted) << written.status();
          ++aborted;  // another writer got there first: read again and redo the change
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  auto final_state = store.Get("s1");
  ASSERT_TRUE(final_state.ok());
  EXPECT_EQ(successes.load(), kThreads * kIncrementsPerThread);
  EXPECT_EQ(final_state->version(), 1u + static_cast<uint64_t>(successes.load()));
  EXPECT_EQ(final_state->updated_at().seconds(), successes.load());
  EXPECT_GT(aborted.load(), 0) << "the writers never raced: the test proves nothing";
  EXPECT_EQ(Count(store, "pbx/a"), 1u);
  EXPECT_THAT(ListAll(store, WorkerFilter("w1")), ElementsAre("s1"));
}

// --- The change log.

v1::WatchSessionsResponse EventOfType(v1::SessionEventType type) {
  v1::WatchSessionsResponse event;
  event.set_type(type);
  *event.mutable_time() = ToProto(kT0);
  return event;
}

TEST_P(SessionStoreContract, AWritesEventIsLoggedWithTheSessionAsWrittenAndOnlyIfItSucceeds) {
  SessionStore& store = *store_;
  std::string position = store.LogTail().value();
  SessionWrite create = Create();
  create.event = EventOfType(v1::SESSION_EVENT_TYPE_ALLOCATED);
  v1::Session s1 = MustWrite(store, Live("s1"), create);
  // A losing write (stale version) logs nothing; a write without an event logs nothing.
  SessionWrite stale = Update(7);
  stale.event = EventOfType(v1::SESSION_EVENT_TYPE_UPDATED);
  EXPECT_EQ(store.Write(s1, stale).status().code(), absl::StatusCode::kAborted);
  s1 = MustWrite(store, s1, Update(1));
  SessionWrite end = Update(2);
  end.event = EventOfType(v1::SESSION_EVENT_TYPE_RELEASED);
  MustWrite(store, Ended(s1), end);
  v1::WatchSessionsResponse contest = EventOfType(v1::SESSION_EVENT_TYPE_LATCH_CONTESTED);
  contest.set_side(v1::SIDE_CALLEE);
  *contest.mutable_session() = Live("s2");
  ASSERT_TRUE(store.AppendEvent(contest).ok());

  auto page = store.ReadLog(position, 100);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->entries.size(), 3u);
  const v1::WatchSessionsResponse& allocated = page->entries[0].value;
  EXPECT_EQ(allocated.type(), v1::SESSION_EVENT_TYPE_ALLOCATED);
  EXPECT_EQ(allocated.session().session_id(), "s1");
  EXPECT_EQ(allocated.session().version(), 1u);
  EXPECT_EQ(FromProto(allocated.time()), kT0);
  const v1::WatchSessionsResponse& released = page->entries[1].value;
  EXPECT_EQ(released.type(), v1::SESSION_EVENT_TYPE_RELEASED);
  EXPECT_EQ(released.session().version(), 3u);
  EXPECT_EQ(released.session().state(), v1::SESSION_STATE_ENDED);
  EXPECT_EQ(page->entries[2].value.type(), v1::SESSION_EVENT_TYPE_LATCH_CONTESTED);
  EXPECT_EQ(page->entries[2].value.side(), v1::SIDE_CALLEE);
  EXPECT_EQ(page->entries[2].value.session().session_id(), "s2");
  EXPECT_EQ(page->next, page->entries[2].position);
  EXPECT_EQ(store.LogTail().value(), page->next);
  // Pages continue where the last one ended.
  auto first = store.ReadLog(position, 2);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->entries.size(), 2u);
  auto rest = store.ReadLog(first->next, 2);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->entries.size(), 1u);
  EXPECT_EQ(rest->entries[0].value.type(), v1::SESSION_EVENT_TYPE_LATCH_CONTESTED);
}

TEST_P(SessionStoreContract, AReaderOlderThanTheLogKeepsOrNotOfThisLogIsOutOfRange) {
  std::unique_ptr<SessionStore> store = GetParam().make(10);
  ASSERT_NE(store, nullptr);
  const std::string start = store->LogTail().value();
  for (int i = 0; i < 600; ++i) {
    ASSERT_TRUE(store->AppendEvent(EventOfType(v1::SESSION_EVENT_TYPE_UPDATED)).ok());
  }
  EXPECT_EQ(store->ReadLog(start, 10).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(store->ReadLog("not-a-position", 10).status().code(), absl::StatusCode::kOutOfRange);
  auto tail = store->ReadLog(store->LogTail().value(), 10);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_TRUE(tail->entries.empty());
}

}  // namespace latchkey::control::session_contract
