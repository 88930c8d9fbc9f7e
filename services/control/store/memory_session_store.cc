#include "services/control/store/memory_session_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "services/control/quota/owner_limit.h"
#include "services/control/store/store_errors.h"

namespace latchkey::control {
namespace {

bool IsLive(const v1::Session& session) { return session.state() != v1::SESSION_STATE_ENDED; }

// Removes `id` from the set under `key`, and the set once empty so idle owners and workers cost
// nothing.
void EraseFromIndex(absl::flat_hash_map<std::string, absl::btree_set<std::string>>& index, const std::string& key,
                    const std::string& id) {
  auto it = index.find(key);
  if (it == index.end()) return;
  it->second.erase(id);
  if (it->second.empty()) index.erase(it);
}

}  // namespace

absl::StatusOr<v1::Session> MemorySessionStore::Write(const v1::Session& session, const SessionWrite& write) {
  const std::string& id = session.session_id();
  if (id.empty()) return absl::InvalidArgumentError("session_id: empty");
  const bool live = IsLive(session);
  CallKey key{session.owner(), session.call_id(), CallTagOf(session)};

  absl::MutexLock lock(&mu_);
  // Everything is checked before anything changes, so a refused write leaves the store as it was.
  auto existing = records_.find(id);
  if (write.expected_version == 0) {
    if (existing != records_.end()) {
      return SessionExists(id);
    }
  } else {
    if (existing == records_.end()) return NoSuchSession(id);
    if (existing->second.version != write.expected_version) {
      return StaleSessionVersion(id, existing->second.version, write.expected_version);
    }
  }
  const bool was_live = existing != records_.end() && existing->second.live;
  if (live) {
    if (auto holder = call_keys_.find(key); holder != call_keys_.end() && holder->second != id) {
      return CallHeld(holder->second, session.call_id(), session.caller().tag());
    }
  }
  // Only a session becoming live takes a place: an update of a live one holds its place already.
  // Adoption passes UINT64_MAX, so the calls a relay carries already are counted but never refused.
  if (live && !was_live && CountedOwner(session.owner())) {
    const uint64_t held = LiveCountLocked(session.owner());
    if (held >= write.max_live_per_owner) {
      return OwnerLimitReached("max_sessions_per_pbx", session.owner(), held, "live sessions");
    }
  }

  Record record;
  record.version =
      std::max<uint64_t>(existing == records_.end() ? 1 : existing->second.version + 1, write.min_version);
  record.live = live;
  record.owner = std::move(std::get<0>(key));
  record.call_id = std::move(std::get<1>(key));
  record.from_tag = std::move(std::get<2>(key));
  record.worker_id = session.worker_id();
  record.expires_at = write.expires_at;
  // The stored version is the store's, whatever the caller's copy carried.
  v1::Session stored = session;
  stored.set_version(record.version);
  record.bytes = stored.SerializeAsString();

  if (existing != records_.end()) {
    Unindex(id, existing->second);
    existing->second = std::move(record);
  } else {
    existing = records_.emplace(id, std::move(record)).first;
  }
  Index(id, existing->second);
  if (write.event) {
    v1::WatchSessionsResponse event = *write.event;
    *event.mutable_session() = stored;
    log_.Append(std::move(event));
  }
  return stored;
}

absl::Status MemorySessionStore::AppendEvent(const v1::WatchSessionsResponse& event) {
  absl::MutexLock lock(&mu_);
  log_.Append(event);
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemorySessionStore::LogTail() {
  absl::MutexLock lock(&mu_);
  return log_.Tail();
}

absl::StatusOr<LogPage<v1::WatchSessionsResponse>> MemorySessionStore::ReadLog(const std::string& after, size_t limit) {
  absl::StatusOr<LogPage<std::shared_ptr<const v1::WatchSessionsResponse>>> snapshot;
  {
    absl::MutexLock lock(&mu_);
    snapshot = log_.Snapshot("resume_token", after, limit);
  }
  return MemoryChangeLog<v1::WatchSessionsResponse>::Materialize(std::move(snapshot));
}

absl::Status MemorySessionStore::Remove(const std::string& session_id, uint64_t expected_version) {
  absl::MutexLock lock(&mu_);
  auto it = records_.find(session_id);
  if (it == records_.end()) return NoSuchSession(session_id);
  if (it->second.version != expected_version) return StaleSessionVersion(session_id, it->second.version, expected_version);
  Unindex(session_id, it->second);
  records_.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<v1::Session> MemorySessionStore::Get(const std::string& session_id) {
  absl::MutexLock lock(&mu_);
  auto it = records_.find(session_id);
  if (it == records_.end()) return NoSuchSession(session_id);
  return Parse(it->first, it->second);
}

absl::StatusOr<v1::Session> MemorySessionStore::FindLive(const std::string& owner, const std::string& call_id,
                                                         const std::string& from_tag, const std::string& branch) {
  absl::MutexLock lock(&mu_);
  auto holder = call_keys_.find(CallKey{owner, call_id, CallTag(from_tag, branch)});
  if (holder == call_keys_.end()) {
    return NoLiveCall(call_id, from_tag);
  }
  auto it = records_.find(holder->second);
  // The index and the records change in one step, so a holder is always stored.
  if (it == records_.end()) {
    return absl::InternalError(absl::StrCat("call index names a missing session ", holder->second));
  }
  return Parse(it->first, it->second);
}

absl::StatusOr<SessionPage> MemorySessionStore::List(const SessionFilter& filter, const std::string& cursor,
                                                      size_t limit) {
  if (limit == 0) return absl::InvalidArgumentError("limit: must be at least 1");
  // Whether a record passes the filter; indexes pick the candidates, this settles the intersection.
  auto matches = [&filter](const Record& record) {
    return (!filter.owner.has_value() || record.owner == *filter.owner) &&
           (filter.worker_id.empty() || (record.live && record.worker_id == filter.worker_id));
  };
  SessionPage page;
  // Set when one more session matched after the page filled: only then is there a next page.
  bool more = false;
  auto take = [&](const std::string& id, const Record& record) -> absl::Status {
    if (page.sessions.size() == limit) {
      more = true;
      return absl::OkStatus();
    }
    absl::StatusOr<v1::Session> session = Parse(id, record);
    if (!session.ok()) return session.status();
    page.sessions.push_back(*std::move(session));
    return absl::OkStatus();
  };

  absl::MutexLock lock(&mu_);
  absl::Status status;
  if (!filter.owner.has_value() && filter.worker_id.empty()) {
    for (auto it = records_.upper_bound(cursor); it != records_.end() && !more && status.ok(); ++it) {
      status = take(it->first, it->second);
    }
  } else {
    // One filter: its index is exactly the answer. Both: walk the smaller set, test the other on
    // the record.
    static const absl::btree_set<std::string> kNone;
    const absl::btree_set<std::string>* ids = &kNone;
    const absl::btree_set<std::string>* owned = nullptr;
    if (filter.owner.has_value()) {
      auto it = by_owner_.find(*filter.owner);
      owned = it == by_owner_.end() ? &kNone : &it->second;
      ids = owned;
    }
    if (!filter.worker_id.empty()) {
      auto it = by_worker_.find(filter.worker_id);
      const absl::btree_set<std::string>* mine = it == by_worker_.end() ? &kNone : &it->second;
      if (owned == nullptr || mine->size() < owned->size()) ids = mine;
    }
    for (auto it = ids->upper_bound(cursor); it != ids->end() && !more && status.ok(); ++it) {
      auto record = records_.find(*it);
      if (record == records_.end()) return absl::InternalError(absl::StrCat("index names a missing session ", *it));
      if (matches(record->second)) status = take(record->first, record->second);
    }
  }
  if (!status.ok()) return status;
  if (more) page.next_cursor = page.sessions.back().session_id();
  return page;
}

absl::StatusOr<std::vector<v1::Session>> MemorySessionStore::ListExpired(absl::Time now, size_t limit) {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Session> out;
  for (auto it = expiry_.begin(); it != expiry_.end() && out.size() < limit && it->first <= now; ++it) {
    auto record = records_.find(it->second);
    if (record == records_.end()) {
      return absl::InternalError(absl::StrCat("expiry index names a missing session ", it->second));
    }
    auto session = Parse(record->first, record->second);
    if (!session.ok()) return session.status();
    out.push_back(*std::move(session));
  }
  return out;
}

absl::StatusOr<uint64_t> MemorySessionStore::LiveCount(const std::string& owner) {
  absl::MutexLock lock(&mu_);
  return LiveCountLocked(owner);
}

absl::StatusOr<std::vector<v1::Session>> MemorySessionStore::ListLiveCall(const std::string& owner,
                                                                          const std::string& call_id, size_t limit) {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Session> out;
  auto it = by_call_.find({owner, call_id});
  if (it == by_call_.end()) return out;
  for (const std::string& id : it->second) {
    if (out.size() >= limit) break;
    if (auto record = records_.find(id); record != records_.end()) {
      ASSIGN_OR_RETURN(v1::Session session, Parse(record->first, record->second));
      out.push_back(std::move(session));
    }
  }
  return out;
}

uint64_t MemorySessionStore::LiveCountLocked(const std::string& owner) const {
  auto it = live_count_.find(owner);
  return it == live_count_.end() ? 0 : it->second;
}

void MemorySessionStore::Index(const std::string& id, const Record& record) {
  by_owner_[record.owner].insert(id);
  if (record.expires_at != absl::InfiniteFuture()) expiry_.emplace(record.expires_at, id);
  if (!record.live) return;
  call_keys_[CallKey{record.owner, record.call_id, record.from_tag}] = id;
  by_call_[{record.owner, record.call_id}].insert(id);
  // An empty worker_id cannot be asked for (it means "any worker"), so it is not indexed.
  if (!record.worker_id.empty()) by_worker_[record.worker_id].insert(id);
  if (CountedOwner(record.owner)) ++live_count_[record.owner];
}

void MemorySessionStore::Unindex(const std::string& id, const Record& record) {
  EraseFromIndex(by_owner_, record.owner, id);
  if (record.expires_at != absl::InfiniteFuture()) expiry_.erase({record.expires_at, id});
  if (!record.live) return;
  if (auto it = call_keys_.find(CallKey{record.owner, record.call_id, record.from_tag});
      it != call_keys_.end() && it->second == id) {
    call_keys_.erase(it);
  }
  if (auto it = by_call_.find({record.owner, record.call_id}); it != by_call_.end()) {
    it->second.erase(id);
    if (it->second.empty()) by_call_.erase(it);
  }
  if (!record.worker_id.empty()) EraseFromIndex(by_worker_, record.worker_id, id);
  if (CountedOwner(record.owner)) {
    if (auto it = live_count_.find(record.owner); it != live_count_.end() && --it->second == 0) live_count_.erase(it);
  }
}

absl::StatusOr<v1::Session> MemorySessionStore::Parse(const std::string& id, const Record& record) {
  v1::Session session;
  if (!session.ParseFromString(record.bytes)) {
    return absl::InternalError(absl::StrCat("stored session ", id, " does not parse"));
  }
  return session;
}

}  // namespace latchkey::control
