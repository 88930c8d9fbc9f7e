#pragma once
// Where bindings live. Every mutation is one atomic operation keyed by the binding's identity or id,
// so that several control replicas on one shared store need no lock of their own: two refreshes of
// one identity never make two bindings, a release or an expiry is never undone by a late write, and
// two sweepers never expire one binding twice. Every write increments the record's `version`.
//
// Rules every implementation keeps (MemoryBindingStore; a Redis one runs them as one server-side
// function per operation):
// - A binding is identified by BindingIdentity; at most one binding per identity, and at most one
//   identity per binding id.
// - Upsert of a known identity refreshes it: the stored binding_id, owner, created_at and
//   reachability stay, source_changes grows by one when the source address differs, every other
//   field is the candidate's (MergeRefresh in binding_record.h).
// - Upsert of a new identity creates it under the candidate's binding_id (ALREADY_EXISTS if that id
//   is taken: the caller draws another), unless the store holds `max_total` bindings or the owner
//   `max_per_owner` (only "pbx/..." owners are counted): RESOURCE_EXHAUSTED naming the config field.
// - Expiry is the record's expires_at; TakeExpired removes what is due, each record once.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "latchkey/v1/nat_control.pb.h"
#include "services/control/store/change_log.h"

namespace latchkey::control {

// Who registered the binding, its AOR and its contact identity: "i:" + the +sip.instance when the
// Contact has one (RFC 5626), else "c:" + the Contact URI as sent.
struct BindingIdentity {
  std::string owner;
  std::string aor;
  std::string contact;
};

struct BindingLimits {
  uint64_t max_total = UINT64_MAX;
  uint64_t max_per_owner = UINT64_MAX;
};

struct BindingChange {
  std::optional<v1::Binding> previous;  // none: the binding was created
  v1::Binding current;
};

struct BindingFilter {
  std::optional<std::string> owner;  // only this owner's bindings
  std::string aor;                   // only this AOR (with owner set: read by key range)
};

struct BindingPage {
  std::vector<v1::Binding> bindings;
  std::string next_cursor;  // empty when this was the last page
};

class BindingStore {
 public:
  virtual ~BindingStore() = default;

  // Creates or refreshes the binding of `identity` from `candidate` (see the rules above).
  virtual absl::StatusOr<BindingChange> Upsert(const BindingIdentity& identity, const v1::Binding& candidate,
                                               const BindingLimits& limits) = 0;
  // Upsert without blocking the caller on a remote store: `done` runs once, possibly on the store's
  // I/O thread (so it must not block either). In-memory stores answer at once.
  using UpsertDone = std::function<void(absl::StatusOr<BindingChange>)>;
  virtual void UpsertAsync(const BindingIdentity& identity, const v1::Binding& candidate, const BindingLimits& limits,
                           UpsertDone done) {
    done(Upsert(identity, candidate, limits));
  }
  // Removes the binding of `identity`; NOT_FOUND if there is none.
  virtual absl::StatusOr<v1::Binding> RemoveIdentity(const BindingIdentity& identity) = 0;
  // Removes binding `binding_id` if it exists and, when `owner` is given, belongs to it; NOT_FOUND
  // otherwise (another owner's binding is indistinguishable from an absent one).
  virtual absl::StatusOr<v1::Binding> Remove(const std::string& binding_id, const std::optional<std::string>& owner) = 0;
  // NOT_FOUND if absent.
  virtual absl::StatusOr<v1::Binding> Get(const std::string& binding_id) = 0;
  // Sets the binding's reachability; the updated binding, or nullopt if it was absent or unchanged.
  virtual absl::StatusOr<std::optional<v1::Binding>> SetReachability(const std::string& binding_id,
                                                                     v1::Reachability reachability) = 0;
  // Bindings in (owner, AOR, contact identity) order after `cursor` (a next_cursor, or "").
  virtual absl::StatusOr<BindingPage> List(const BindingFilter& filter, const std::string& cursor, size_t limit) = 0;
  // Removes and returns up to `limit` bindings whose expires_at is at or before `now`, earliest
  // first. Costs O(expired), never a scan.
  virtual absl::StatusOr<std::vector<v1::Binding>> TakeExpired(absl::Time now, size_t limit) = 0;
  virtual absl::StatusOr<uint64_t> Count() = 0;

  // The change log (change_log.h): every change above appends its event type (CREATED, REFRESHED,
  // SOURCE_CHANGED, RELEASED, EXPIRED, REACHABLE, UNREACHABLE) and the binding after it (as it was,
  // when removed), in the same atomic step. LogTail is the newest position (where a reader that
  // wants only what comes next starts).
  virtual absl::StatusOr<std::string> LogTail() = 0;
  virtual absl::StatusOr<LogPage<BindingLogEntry>> ReadLog(const std::string& after, size_t limit) = 0;
};

}  // namespace latchkey::control
