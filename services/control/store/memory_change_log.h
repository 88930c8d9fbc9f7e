#pragma once
// The change log of an embedded store: the last `capacity` entries in memory. Not thread-safe: the
// store appends under its own lock, in the same step as the change, and reads a Snapshot under it;
// entries are shared, so copying them out (Materialize) happens after the lock is released. Positions
// name this process ("m<epoch>.<n>"), so a token from before a restart is recognised as not ours
// (OUT_OF_RANGE).
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/control/store/change_log.h"

namespace latchkey::control {

template <typename T>
class MemoryChangeLog {
 public:
  explicit MemoryChangeLog(uint64_t capacity = kDefaultLogLength)
      : capacity_(capacity < 1 ? 1 : capacity), epoch_(absl::Uniform<uint32_t>(absl::BitGen())) {}

  void Append(T value) {
    entries_.push_back(std::make_shared<const T>(std::move(value)));
    ++last_;
    if (entries_.size() > capacity_) entries_.pop_front();
  }

  std::string Tail() const { return Position(last_); }

  using Shared = std::shared_ptr<const T>;

  absl::StatusOr<LogPage<Shared>> Snapshot(const std::string& field, const std::string& after, size_t limit) const {
    uint64_t n = 0;
    if (!Parse(after, &n) || n > last_ || n + entries_.size() < last_) return LogPositionGone(field, after);
    LogPage<Shared> page;
    const uint64_t first = last_ - entries_.size() + 1;  // sequence number of entries_[0]
    for (uint64_t seq = n + 1; seq <= last_ && page.entries.size() < limit; ++seq) {
      page.entries.push_back({Position(seq), entries_[seq - first]});
    }
    page.next = page.entries.empty() ? after : page.entries.back().position;
    return page;
  }

  static absl::StatusOr<LogPage<T>> Materialize(absl::StatusOr<LogPage<Shared>> snapshot) {
    if (!snapshot.ok()) return snapshot.status();
    LogPage<T> page;
    page.next = std::move(snapshot->next);
    page.entries.reserve(snapshot->entries.size());
    for (auto& entry : snapshot->entries) page.entries.push_back({std::move(entry.position), *entry.value});
    return page;
  }

  // Snapshot and Materialize in one (when no lock is held around it).
  absl::StatusOr<LogPage<T>> Read(const std::string& field, const std::string& after, size_t limit) const {
    return Materialize(Snapshot(field, after, limit));
  }

 private:
  std::string Position(uint64_t seq) const { return absl::StrCat("m", epoch_, ".", seq); }
  bool Parse(absl::string_view position, uint64_t* seq) const {
    if (!absl::ConsumePrefix(&position, "m")) return false;
    std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(position, absl::MaxSplits('.', 1));
    uint32_t epoch = 0;
    return absl::SimpleAtoi(parts.first, &epoch) && epoch == epoch_ && absl::SimpleAtoi(parts.second, seq);
  }

  const uint64_t capacity_;
  const uint32_t epoch_;
  std::deque<Shared> entries_;
  uint64_t last_ = 0;  // sequence number of the newest entry; 0 before the first
};

}  // namespace latchkey::control
