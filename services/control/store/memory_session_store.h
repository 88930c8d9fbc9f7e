#pragma once
// The embedded SessionStore: every table in memory behind one lock, so that each public method is a
// single atomic step over the record and all its indexes (the rules in session_store.h hold between
// any two calls). State is lost on restart; relay workers re-announce the sessions they carry.
//
// Records are kept as serialized Session bytes plus the few fields the indexes need, so that a
// session costs little more than its wire size; reads parse them. n = stored sessions, k = what one
// call returns or examines.
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/control/store/memory_change_log.h"
#include "services/control/store/session_store.h"

namespace latchkey::control {

class MemorySessionStore : public SessionStore {
 public:
  // O(log n) plus serializing the session.
  absl::StatusOr<v1::Session> Write(const v1::Session& session, const SessionWrite& write) override;
  // O(log n).
  absl::Status Remove(const std::string& session_id, uint64_t expected_version) override;
  // O(log n) plus parsing the session.
  absl::StatusOr<v1::Session> Get(const std::string& session_id) override;
  // O(log n): the call index names the holder, the records give it.
  absl::StatusOr<v1::Session> FindLive(const std::string& owner, const std::string& call_id,
                                       const std::string& from_tag, const std::string& branch = "") override;
  // O(log n + k); O((1 + k) log n) with one filter; with both O(m log n), m the smaller set walked.
  // limit 0 is INVALID_ARGUMENT: such a page could never advance.
  absl::StatusOr<SessionPage> List(const SessionFilter& filter, const std::string& cursor, size_t limit) override;
  // O(k log n) for k returned: walks the expiry index from its earliest entry, never the records.
  absl::StatusOr<std::vector<v1::Session>> ListExpired(absl::Time now, size_t limit) override;
  // O(1) expected.
  absl::StatusOr<std::vector<v1::Session>> ListLiveCall(const std::string& owner, const std::string& call_id,
                                                        size_t limit) override;
  absl::StatusOr<uint64_t> LiveCount(const std::string& owner) override;
  absl::Status AppendEvent(const v1::WatchSessionsResponse& event) override;
  absl::StatusOr<std::string> LogTail() override;
  absl::StatusOr<LogPage<v1::WatchSessionsResponse>> ReadLog(const std::string& after, size_t limit) override;

  explicit MemorySessionStore(uint64_t log_length = kDefaultLogLength) : log_(log_length) {}

 private:
  using CallKey = std::tuple<std::string, std::string, std::string>;  // owner, call_id, CallTag

  struct Record {
    std::string bytes;  // the v1::Session as stored, version included
    uint64_t version = 0;
    bool live = false;  // state != ENDED
    std::string owner;
    std::string call_id;
    std::string from_tag;
    std::string worker_id;
    absl::Time expires_at = absl::InfiniteFuture();
  };

  // Adds or drops every index entry of `record` (stored under `id`); validation happens before, so
  // that a write either changes nothing or changes all of it.
  void Index(const std::string& id, const Record& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unindex(const std::string& id, const Record& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static absl::StatusOr<v1::Session> Parse(const std::string& id, const Record& record);
  uint64_t LiveCountLocked(const std::string& owner) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  absl::btree_map<std::string, Record> records_ ABSL_GUARDED_BY(mu_);
  // Call key -> the live session holding it.
  absl::flat_hash_map<CallKey, std::string> call_keys_ ABSL_GUARDED_BY(mu_);
  // (owner, call_id) -> live session ids.
  absl::flat_hash_map<std::pair<std::string, std::string>, absl::flat_hash_set<std::string>> by_call_
      ABSL_GUARDED_BY(mu_);
  // worker_id -> its live sessions' ids, in order so pages read a range.
  absl::flat_hash_map<std::string, absl::btree_set<std::string>> by_worker_ ABSL_GUARDED_BY(mu_);
  // owner -> every stored session id, ended included.
  absl::flat_hash_map<std::string, absl::btree_set<std::string>> by_owner_ ABSL_GUARDED_BY(mu_);
  // Live sessions per counted ("pbx/...") owner; absent means zero.
  absl::flat_hash_map<std::string, uint64_t> live_count_ ABSL_GUARDED_BY(mu_);
  // (expires_at, id) of sessions with a finite expiry, so sweeping touches only what is due.
  absl::btree_set<std::pair<absl::Time, std::string>> expiry_ ABSL_GUARDED_BY(mu_);
  MemoryChangeLog<v1::WatchSessionsResponse> log_ ABSL_GUARDED_BY(mu_);
};

}  // namespace latchkey::control
