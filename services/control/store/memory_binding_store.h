#pragma once
// The embedded binding store: ordered maps in memory under one lock, so each operation is atomic.
// State is lost on restart (endpoints re-register within their expiry). Records are kept serialized:
// about 0.85 KiB per binding.
//   Upsert, Remove*, Get, SetReachability: O(log n); List: O(log n + scanned); TakeExpired:
//   O(expired · log n); Count: O(1).
#include <cstdint>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "services/control/store/binding_store.h"
#include "services/control/store/memory_change_log.h"

namespace latchkey::control {

class MemoryBindingStore : public BindingStore {
 public:
  explicit MemoryBindingStore(uint64_t log_length = kDefaultLogLength) : log_(log_length) {}

  absl::StatusOr<BindingChange> Upsert(const BindingIdentity& identity, const v1::Binding& candidate,
                                       const BindingLimits& limits) override;
  absl::StatusOr<v1::Binding> RemoveIdentity(const BindingIdentity& identity) override;
  absl::StatusOr<v1::Binding> Remove(const std::string& binding_id, const std::optional<std::string>& owner) override;
  absl::StatusOr<v1::Binding> Get(const std::string& binding_id) override;
  absl::StatusOr<std::optional<v1::Binding>> SetReachability(const std::string& binding_id,
                                                             v1::Reachability reachability) override;
  absl::StatusOr<BindingPage> List(const BindingFilter& filter, const std::string& cursor, size_t limit) override;
  absl::StatusOr<std::vector<v1::Binding>> TakeExpired(absl::Time now, size_t limit) override;
  absl::StatusOr<uint64_t> Count() override;
  absl::StatusOr<std::string> LogTail() override;
  absl::StatusOr<LogPage<BindingLogEntry>> ReadLog(const std::string& after, size_t limit) override;

 private:
  void Log(v1::BindingEventType type, const v1::Binding& binding) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  struct Entry {
    std::string identity_key;
    std::string record;  // serialized v1::Binding
    absl::Time expires_at;
  };
  using ById = absl::btree_map<std::string, Entry, std::less<>>;

  static absl::StatusOr<v1::Binding> Parse(const std::string& binding_id, const Entry& entry);
  // Writes `binding` (new or replacing) and keeps the expiry index in step.
  void Put(const std::string& identity_key, const v1::Binding& binding) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes an entry with its index entries and its owner's count.
  void Erase(ById::iterator it, const std::string& owner) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  ById by_id_ ABSL_GUARDED_BY(mu_);
  absl::btree_map<std::string, std::string, std::less<>> by_identity_ ABSL_GUARDED_BY(mu_);  // key -> id
  absl::btree_set<std::pair<absl::Time, std::string>> expiry_ ABSL_GUARDED_BY(mu_);          // (expires_at, id)
  absl::flat_hash_map<std::string, uint64_t> per_owner_ ABSL_GUARDED_BY(mu_);                // counted owners
  MemoryChangeLog<BindingLogEntry> log_ ABSL_GUARDED_BY(mu_);
};

}  // namespace latchkey::control
