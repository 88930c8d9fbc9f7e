#pragma once
// Where control keeps its state. Records are serialized protobuf messages, so a Redis implementation
// (next to the embedded in-memory one) can hold the same bytes: a hash or string per record, a sorted
// set per table for expiry (score = expiry time) and a lexicographic sorted set for ordered listing.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace latchkey::control {

// Tables: record kinds and the indexes that point at them.
enum class Table {
  kBindings,          // binding_id -> v1::Binding
  kBindingIdentity,   // owner \x1f aor \x1f identity -> binding_id (ordered by owner, AOR for ListBindings)
  kSessions,          // session_id -> v1::Session
  kSessionCall,       // owner \x1f call_id \x1f from_tag -> session_id
  kSessionWorker,     // worker_id \x1f session_id -> "" (sessions of a worker)
  kSessionOwner,      // owner \x1f session_id -> "" (what a PBX may list)
};
inline constexpr int kTableCount = 6;

// Separates the parts of composite index keys; cannot occur in SIP tokens, URIs or our ids.
inline constexpr char kKeySeparator = '\x1f';

struct StoredRecord {
  std::string key;
  std::string value;
};

class Store {
 public:
  virtual ~Store() = default;

  // Creates or replaces a record. `expires_at` = absl::InfiniteFuture() for none.
  virtual absl::Status Put(Table table, absl::string_view key, std::string value, absl::Time expires_at) = 0;
  // NOT_FOUND if absent.
  virtual absl::StatusOr<std::string> Get(Table table, absl::string_view key) = 0;
  // OK whether or not it existed.
  virtual absl::Status Delete(Table table, absl::string_view key) = 0;
  // Records whose key starts with `prefix` and sorts after `start_after`, in key order, at most `limit`.
  virtual absl::StatusOr<std::vector<StoredRecord>> List(Table table, absl::string_view prefix,
                                                        absl::string_view start_after, size_t limit) = 0;
  // Removes and returns up to `limit` records whose expiry is at or before `now`, earliest first.
  // Costs O(expired), never a scan of the table.
  virtual absl::StatusOr<std::vector<StoredRecord>> TakeExpired(Table table, absl::Time now, size_t limit) = 0;
  // Like TakeExpired but leaves the records in place: for sweepers that must not make a record vanish
  // while they work on it (the caller deletes or re-writes each one under its own lock).
  virtual absl::StatusOr<std::vector<StoredRecord>> ListExpired(Table table, absl::Time now, size_t limit) = 0;
  // Number of records in a table.
  virtual size_t Count(Table table) = 0;
};

}  // namespace latchkey::control
