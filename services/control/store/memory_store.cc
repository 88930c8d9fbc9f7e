#include "services/control/store/memory_store.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace latchkey::control {

absl::Status MemoryStore::Put(Table table, absl::string_view key, std::string value, absl::Time expires_at) {
  Shard& shard = For(table);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.records.find(key);
  if (it == shard.records.end()) {
    it = shard.records.emplace(std::string(key), Entry{std::move(value), expires_at}).first;
  } else {
    if (it->second.expires_at != absl::InfiniteFuture()) shard.expiry.erase({it->second.expires_at, it->first});
    it->second.value = std::move(value);
    it->second.expires_at = expires_at;
  }
  if (expires_at != absl::InfiniteFuture()) shard.expiry.emplace(expires_at, it->first);
  return absl::OkStatus();
}

absl::StatusOr<std::string> MemoryStore::Get(Table table, absl::string_view key) {
  Shard& shard = For(table);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.records.find(key);
  if (it == shard.records.end()) return absl::NotFoundError(absl::StrCat("no record ", key));
  return it->second.value;
}

absl::Status MemoryStore::Delete(Table table, absl::string_view key) {
  Shard& shard = For(table);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.records.find(key);
  if (it == shard.records.end()) return absl::OkStatus();
  if (it->second.expires_at != absl::InfiniteFuture()) shard.expiry.erase({it->second.expires_at, it->first});
  shard.records.erase(it);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<StoredRecord>> MemoryStore::List(Table table, absl::string_view prefix,
                                                           absl::string_view start_after, size_t limit) {
  Shard& shard = For(table);
  absl::MutexLock lock(&shard.mu);
  std::vector<StoredRecord> out;
  auto it = start_after.empty() || start_after < prefix ? shard.records.lower_bound(prefix)
                                                         : shard.records.upper_bound(start_after);
  for (; it != shard.records.end() && out.size() < limit; ++it) {
    if (!absl::StartsWith(it->first, prefix)) break;
    out.push_back({it->first, it->second.value});
  }
  return out;
}

absl::StatusOr<std::vector<StoredRecord>> MemoryStore::TakeExpired(Table table, absl::Time now, size_t limit) {
  Shard& shard = For(table);
  absl::MutexLock lock(&shard.mu);
  std::vector<StoredRecord> out;
  while (!shard.expiry.empty() && out.size() < limit && shard.expiry.begin()->first <= now) {
    auto node = shard.expiry.extract(shard.expiry.begin());
    auto it = shard.records.find(node.value().second);
    if (it == shard.records.end()) continue;
    out.push_back({std::move(node.value().second), std::move(it->second.value)});
    shard.records.erase(it);
  }
  return out;
}

absl::StatusOr<std::vector<StoredRecord>> MemoryStore::ListExpired(Table table, absl::Time now, size_t limit) {
  Shard& shard = For(table);
  absl::MutexLock lock(&shard.mu);
  std::vector<StoredRecord> out;
  for (auto it = shard.expiry.begin(); it != shard.expiry.end() && out.size() < limit && it->first <= now; ++it) {
    if (auto record = shard.records.find(it->second); record != shard.records.end()) {
      out.push_back({it->second, record->second.value});
    }
  }
  return out;
}

size_t MemoryStore::Count(Table table) {
  Shard& shard = For(table);
  absl::MutexLock lock(&shard.mu);
  return shard.records.size();
}

}  // namespace latchkey::control
