#include "services/control/store/redis/log_reader.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/control/store/redis/fcall.h"

namespace latchkey::control::redis {

absl::StatusOr<std::string> ReadLogTail(RedisClient& client, const std::string& prefix, const std::string& log) {
  auto reply = CallFunction(client, prefix, "lk_l1_tail", {log});
  if (!reply.ok()) return reply.status();
  return reply->str;
}

absl::StatusOr<LogPage<StreamEntry>> ReadLogEntries(RedisClient& client, const std::string& prefix,
                                                    const std::string& log, const std::string& field,
                                                    const std::string& after, size_t limit) {
  auto reply = CallFunction(client, prefix, "lk_l1_read", {log, after, absl::StrCat(limit)});
  if (!reply.ok()) return reply.status();
  const std::vector<RedisReply>& e = reply->elements;
  if (e.empty()) return absl::InternalError("redis: lk_l1_read: empty reply");
  if (e[0].str == "gone") return LogPositionGone(field, after);
  LogPage<StreamEntry> page;
  for (size_t at = 1; at + 1 < e.size(); at += 2) {
    Logged<StreamEntry> entry;
    entry.position = e[at].str;
    const std::vector<RedisReply>& fields = e[at + 1].elements;
    for (size_t f = 0; f + 1 < fields.size(); f += 2) entry.value.fields[fields[f].str] = fields[f + 1].str;
    int64_t ms = 0;
    (void)absl::SimpleAtoi(entry.position.substr(0, entry.position.find('-')), &ms);
    entry.value.time = absl::FromUnixMillis(ms);
    page.entries.push_back(std::move(entry));
  }
  page.next = page.entries.empty() ? after : page.entries.back().position;
  return page;
}

}  // namespace latchkey::control::redis
