#pragma once
// The embedded store: ordered maps in memory, one lock per table. State is lost on restart; relay
// workers re-announce their sessions, and endpoints re-register within their expiry.
#include <array>
#include <string>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/synchronization/mutex.h"
#include "services/control/store/store.h"

namespace latchkey::control {

class MemoryStore : public Store {
 public:
  absl::Status Put(Table table, absl::string_view key, std::string value, absl::Time expires_at) override;
  absl::StatusOr<std::string> Get(Table table, absl::string_view key) override;
  absl::Status Delete(Table table, absl::string_view key) override;
  absl::StatusOr<std::vector<StoredRecord>> List(Table table, absl::string_view prefix,
                                                absl::string_view start_after, size_t limit) override;
  absl::StatusOr<std::vector<StoredRecord>> TakeExpired(Table table, absl::Time now, size_t limit) override;
  absl::StatusOr<std::vector<StoredRecord>> ListExpired(Table table, absl::Time now, size_t limit) override;
  size_t Count(Table table) override;

 private:
  struct Entry {
    std::string value;
    absl::Time expires_at;
  };
  struct Shard {
    absl::Mutex mu;
    absl::btree_map<std::string, Entry, std::less<>> records ABSL_GUARDED_BY(mu);
    // (expiry, key) of records with a finite expiry, so sweeping touches only what expired.
    absl::btree_set<std::pair<absl::Time, std::string>> expiry ABSL_GUARDED_BY(mu);
  };
  Shard& For(Table table) { return shards_[static_cast<int>(table)]; }

  std::array<Shard, kTableCount> shards_;
};

}  // namespace latchkey::control
