#include "services/control/store/memory_binding_store.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/time/proto_time.h"
#include "common/validation.h"
#include "services/control/quota/owner_limit.h"
#include "services/control/store/binding_record.h"
#include "services/control/store/store_errors.h"

namespace latchkey::control {
namespace {

std::string OwnerOfIdentityKey(const std::string& key) { return key.substr(0, key.find(kIdentitySeparator)); }

// An operator's AOR filter without an owner walks every owner's range; bound the work one call does.
constexpr size_t kScanPerResult = 16;

}  // namespace

absl::StatusOr<v1::Binding> MemoryBindingStore::Parse(const std::string& binding_id, const Entry& entry) {
  v1::Binding binding;
  if (!binding.ParseFromString(entry.record)) {
    return absl::DataLossError(absl::StrCat("binding ", binding_id, " is corrupt"));
  }
  return binding;
}

void MemoryBindingStore::Put(const std::string& identity_key, const v1::Binding& binding) {
  const absl::Time expires_at =
      binding.has_expires_at() ? FromProto(binding.expires_at()) : absl::InfiniteFuture();
  auto [it, inserted] = by_id_.try_emplace(binding.binding_id());
  if (!inserted && it->second.expires_at != absl::InfiniteFuture()) {
    expiry_.erase({it->second.expires_at, it->first});
  }
  it->second.identity_key = identity_key;
  it->second.record = binding.SerializeAsString();
  it->second.expires_at = expires_at;
  if (expires_at != absl::InfiniteFuture()) expiry_.emplace(expires_at, it->first);
}

void MemoryBindingStore::Erase(ById::iterator it, const std::string& owner) {
  if (it->second.expires_at != absl::InfiniteFuture()) expiry_.erase({it->second.expires_at, it->first});
  if (auto index = by_identity_.find(it->second.identity_key); index != by_identity_.end() && index->second == it->first) {
    by_identity_.erase(index);
  }
  if (auto count = per_owner_.find(owner); count != per_owner_.end() && --count->second == 0) per_owner_.erase(count);
  by_id_.erase(it);
}

absl::StatusOr<BindingChange> MemoryBindingStore::Upsert(const BindingIdentity& identity, const v1::Binding& candidate,
                                                         const BindingLimits& limits) {
  const std::string key = IdentityKey(identity);
  absl::MutexLock lock(&mu_);
  if (auto index = by_identity_.find(key); index != by_identity_.end()) {
    auto it = by_id_.find(index->second);
    if (it != by_id_.end()) {
      auto stored = Parse(it->first, it->second);
      if (!stored.ok()) return stored.status();
      BindingChange change;
      change.current = MergeRefresh(*stored, candidate);
      change.previous = *std::move(stored);
      Put(key, change.current);
      Log(change.current.source_changes() != change.previous->source_changes() ? v1::BINDING_EVENT_TYPE_SOURCE_CHANGED
                                                                               : v1::BINDING_EVENT_TYPE_REFRESHED,
          change.current);
      return change;
    }
    by_identity_.erase(index);  // cannot happen: both are changed under one lock
  }
  if (candidate.binding_id().empty()) return absl::InvalidArgumentError("binding_id: required for a new binding");
  if (by_id_.contains(candidate.binding_id())) {
    return absl::AlreadyExistsError(absl::StrCat("binding_id: \"", candidate.binding_id(), "\" is taken"));
  }
  if (by_id_.size() >= limits.max_total) {
    return absl::ResourceExhaustedError(
        absl::StrCat("max_bindings: the limit of ", limits.max_total, " bindings is reached"));
  }
  const bool counted = CountedOwner(identity.owner);
  if (counted) {
    auto count = per_owner_.find(identity.owner);
    const uint64_t held = count == per_owner_.end() ? 0 : count->second;
    if (held >= limits.max_per_owner) {
      return OwnerLimitReached("max_bindings_per_pbx", identity.owner, held, "bindings");
    }
  }
  BindingChange change;
  change.current = NewBinding(identity, candidate);
  Put(key, change.current);
  by_identity_.emplace(key, candidate.binding_id());
  if (counted) ++per_owner_[identity.owner];
  Log(v1::BINDING_EVENT_TYPE_CREATED, change.current);
  return change;
}

absl::StatusOr<v1::Binding> MemoryBindingStore::RemoveIdentity(const BindingIdentity& identity) {
  const std::string key = IdentityKey(identity);
  absl::MutexLock lock(&mu_);
  auto index = by_identity_.find(key);
  if (index == by_identity_.end()) return absl::NotFoundError("no binding of this contact for this aor");
  auto it = by_id_.find(index->second);
  if (it == by_id_.end()) return absl::NotFoundError("no binding of this contact for this aor");
  auto binding = Parse(it->first, it->second);
  Erase(it, identity.owner);
  if (binding.ok()) Log(v1::BINDING_EVENT_TYPE_RELEASED, *binding);
  return binding;
}

absl::StatusOr<v1::Binding> MemoryBindingStore::Remove(const std::string& binding_id,
                                                       const std::optional<std::string>& owner) {
  absl::MutexLock lock(&mu_);
  auto it = by_id_.find(binding_id);
  if (it == by_id_.end()) return NoSuchBinding(binding_id);
  const std::string stored_owner = OwnerOfIdentityKey(it->second.identity_key);
  if (owner && *owner != stored_owner) return NoSuchBinding(binding_id);
  auto binding = Parse(it->first, it->second);
  Erase(it, stored_owner);
  if (binding.ok()) Log(v1::BINDING_EVENT_TYPE_RELEASED, *binding);
  return binding;
}

absl::StatusOr<v1::Binding> MemoryBindingStore::Get(const std::string& binding_id) {
  absl::MutexLock lock(&mu_);
  auto it = by_id_.find(binding_id);
  if (it == by_id_.end()) return NoSuchBinding(binding_id);
  return Parse(it->first, it->second);
}

absl::StatusOr<std::optional<v1::Binding>> MemoryBindingStore::SetReachability(const std::string& binding_id,
                                                                               v1::Reachability reachability) {
  absl::MutexLock lock(&mu_);
  auto it = by_id_.find(binding_id);
  if (it == by_id_.end()) return std::optional<v1::Binding>();
  auto binding = Parse(it->first, it->second);
  if (!binding.ok()) return binding.status();
  if (binding->reachability() == reachability) return std::optional<v1::Binding>();
  binding->set_reachability(reachability);
  binding->set_version(binding->version() + 1);
  it->second.record = binding->SerializeAsString();
  Log(reachability == v1::REACHABILITY_UNREACHABLE ? v1::BINDING_EVENT_TYPE_UNREACHABLE
                                                   : v1::BINDING_EVENT_TYPE_REACHABLE,
      *binding);
  return std::optional<v1::Binding>(*std::move(binding));
}

absl::StatusOr<BindingPage> MemoryBindingStore::List(const BindingFilter& filter, const std::string& cursor,
                                                     size_t limit) {
  const std::string prefix = IdentityPrefix(filter);
  if (absl::Status s = CheckCursorInRange(cursor, prefix); !s.ok()) return s;
  const bool filter_aor = !filter.owner && !filter.aor.empty();
  BindingPage page;
  absl::MutexLock lock(&mu_);
  auto it = cursor.empty() ? by_identity_.lower_bound(prefix) : by_identity_.upper_bound(cursor);
  size_t budget = limit * kScanPerResult + kScanPerResult;
  std::string last;
  for (; it != by_identity_.end() && absl::StartsWith(it->first, prefix); ++it) {
    if (page.bindings.size() == limit || budget-- == 0) {
      page.next_cursor = last;  // more remain (or the scan budget ran out): continue after the last seen
      break;
    }
    last = it->first;
    if (filter_aor && AorOfIdentityKey(it->first) != filter.aor) continue;
    auto entry = by_id_.find(it->second);
    if (entry == by_id_.end()) continue;
    auto binding = Parse(entry->first, entry->second);
    if (!binding.ok()) continue;
    page.bindings.push_back(*std::move(binding));
  }
  return page;
}

absl::StatusOr<std::vector<v1::Binding>> MemoryBindingStore::TakeExpired(absl::Time now, size_t limit) {
  std::vector<v1::Binding> out;
  absl::MutexLock lock(&mu_);
  while (out.size() < limit && !expiry_.empty() && expiry_.begin()->first <= now) {
    const std::string id = expiry_.begin()->second;
    auto it = by_id_.find(id);
    if (it == by_id_.end()) {
      expiry_.erase(expiry_.begin());
      continue;
    }
    auto binding = Parse(it->first, it->second);
    Erase(it, OwnerOfIdentityKey(it->second.identity_key));
    if (!binding.ok()) continue;
    Log(v1::BINDING_EVENT_TYPE_EXPIRED, *binding);
    out.push_back(*std::move(binding));
  }
  return out;
}

void MemoryBindingStore::Log(v1::BindingEventType type, const v1::Binding& binding) {
  BindingLogEntry entry;
  entry.type = type;
  entry.binding = binding;
  entry.time = absl::Now();
  log_.Append(std::move(entry));
}

absl::StatusOr<std::string> MemoryBindingStore::LogTail() {
  absl::MutexLock lock(&mu_);
  return log_.Tail();
}

absl::StatusOr<LogPage<BindingLogEntry>> MemoryBindingStore::ReadLog(const std::string& after, size_t limit) {
  absl::StatusOr<LogPage<std::shared_ptr<const BindingLogEntry>>> snapshot;
  {
    absl::MutexLock lock(&mu_);
    snapshot = log_.Snapshot("resume_token", after, limit);
  }
  return MemoryChangeLog<BindingLogEntry>::Materialize(std::move(snapshot));
}

absl::StatusOr<uint64_t> MemoryBindingStore::Count() {
  absl::MutexLock lock(&mu_);
  return by_id_.size();
}

}  // namespace latchkey::control
