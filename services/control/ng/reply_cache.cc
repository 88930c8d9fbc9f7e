#include "services/control/ng/reply_cache.h"

#include "absl/strings/str_cat.h"

namespace latchkey::control::ng {

std::string ReplyCache::Key(const std::string& source, const std::string& cookie) {
  return absl::StrCat(source, "\x1f", cookie);
}

void ReplyCache::Rotate(absl::Time now) {
  if (rotated_at_ == absl::InfinitePast()) rotated_at_ = now;
  if (now - rotated_at_ < retention_) return;
  // Entries still running move along: their Finish must find them.
  absl::flat_hash_map<std::string, Entry> busy;
  for (auto& [key, entry] : previous_) {
    if (!entry.done) busy.emplace(key, std::move(entry));
  }
  previous_ = std::move(current_);
  current_ = std::move(busy);
  previous_bytes_ = current_bytes_;
  current_bytes_ = 0;
  // Two retentions without traffic: nothing of the older generation may survive either.
  if (now - rotated_at_ >= 2 * retention_) {
    for (auto it = previous_.begin(); it != previous_.end();) {
      auto here = it++;
      if (here->second.done) previous_.erase(here);
    }
    previous_bytes_ = 0;
  }
  rotated_at_ = now;
}

ReplyCache::Lookup ReplyCache::Begin(const std::string& source, const std::string& cookie, absl::Time now,
                                     std::string* reply) {
  Rotate(now);
  const std::string key = Key(source, cookie);
  for (auto* generation : {&current_, &previous_}) {
    auto it = generation->find(key);
    if (it == generation->end()) continue;
    if (!it->second.done) return Lookup::kBusy;
    *reply = it->second.reply;
    return Lookup::kDone;
  }
  if (current_.size() >= max_entries_) {
    ++uncached_;
    return Lookup::kNew;
  }
  current_.emplace(key, Entry{});
  return Lookup::kNew;
}

bool ReplyCache::Finish(const std::string& source, const std::string& cookie, std::string reply, absl::Time now) {
  Rotate(now);
  const std::string key = Key(source, cookie);
  for (auto* generation : {&current_, &previous_}) {
    auto it = generation->find(key);
    if (it == generation->end()) continue;
    const size_t bytes = key.size() + reply.size();
    if (current_bytes_ + previous_bytes_ + bytes > max_bytes_) {
      generation->erase(it);
      ++uncached_;
      return false;
    }
    (generation == &current_ ? current_bytes_ : previous_bytes_) += bytes;
    it->second.done = true;
    it->second.reply = std::move(reply);
    return true;
  }
  // Not cached (the cache was full at Begin): nothing to keep.
  return false;
}

}  // namespace latchkey::control::ng
