#include "services/control/store/redis/redis_session_store.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "services/control/quota/owner_limit.h"
#include "services/control/store/redis/fcall.h"
#include "services/control/store/redis/log_reader.h"
#include "services/control/store/store_errors.h"

namespace latchkey::control::redis {
namespace {

constexpr size_t kRecordElements = 3;  // {id, rec, ver}
constexpr char kSep = '\x1f';

std::string CallKey(absl::string_view owner, absl::string_view call_id, absl::string_view from_tag) {
  return absl::StrCat(owner, std::string(1, kSep), call_id, std::string(1, kSep), from_tag);
}

absl::StatusOr<v1::Session> Decode(const std::vector<RedisReply>& e, size_t at) {
  if (e.size() < at + kRecordElements) return absl::InternalError("redis: short session record");
  v1::Session session;
  if (!session.ParseFromString(e[at + 1].str)) {
    return absl::DataLossError(absl::StrCat("session ", e[at].str, " is corrupt"));
  }
  session.set_version(static_cast<uint64_t>(ReplyInt(e[at + 2])));
  return session;
}

absl::StatusOr<std::vector<v1::Session>> DecodeAll(const std::vector<RedisReply>& e, size_t from) {
  std::vector<v1::Session> out;
  for (size_t at = from; at + kRecordElements <= e.size(); at += kRecordElements) {
    auto session = Decode(e, at);
    if (!session.ok()) return session.status();
    out.push_back(*std::move(session));
  }
  return out;
}

// The error a function reported as {'error', code, detail}.
absl::Status FunctionError(const v1::Session& session, const SessionWrite& write, const std::vector<RedisReply>& e) {
  const std::string& code = e.size() > 1 ? e[1].str : "";
  const std::string& detail = e.size() > 2 ? e[2].str : "";
  const std::string& id = session.session_id();
  if (code == "exists") return SessionExists(id);
  if (code == "not_found") return NoSuchSession(id);
  if (code == "stale") return StaleSessionVersion(id, detail, write.expected_version);
  if (code == "call_taken") return CallHeld(detail, session.call_id(), session.caller().tag());
  if (code == "limit") {
    uint64_t held = 0;
    (void)absl::SimpleAtoi(detail, &held);
    return OwnerLimitReached("max_sessions_per_pbx", session.owner(), held, "live sessions");
  }
  return absl::InternalError(absl::StrCat("redis: lk_s3_write: unexpected error ", code));
}

}  // namespace

absl::StatusOr<RedisReply> RedisSessionStore::Fcall(const char* function, std::vector<std::string> args) {
  return CallFunction(*client_, prefix_, function, std::move(args));
}

absl::StatusOr<v1::Session> RedisSessionStore::Write(const v1::Session& session, const SessionWrite& write) {
  if (session.session_id().empty()) return absl::InvalidArgumentError("session_id: empty");
  v1::Session record = session;
  record.clear_version();
  const bool live = session.state() != v1::SESSION_STATE_ENDED;
  auto reply = Fcall("lk_s3_write",
                     {session.session_id(), record.SerializeAsString(), absl::StrCat(write.expected_version),
                      write.expires_at == absl::InfiniteFuture() ? "" : absl::StrCat(CeilUnixMillis(write.expires_at)),
                      absl::StrCat(write.max_live_per_owner), absl::StrCat(write.min_version), live ? "1" : "0",
                      session.owner(), CallKey(session.owner(), session.call_id(), CallTagOf(session)),
                      session.worker_id(), write.event ? write.event->SerializeAsString() : "", log_length_});
  if (!reply.ok()) return reply.status();
  const std::vector<RedisReply>& e = reply->elements;
  if (e.size() >= 2 && e[0].str == "ok") {
    record.set_version(static_cast<uint64_t>(ReplyInt(e[1])));
    return record;
  }
  if (!e.empty() && e[0].str == "error") return FunctionError(session, write, e);
  return absl::InternalError(absl::StrCat("redis: lk_s3_write: unexpected reply ", reply->DebugString()));
}

absl::Status RedisSessionStore::Remove(const std::string& session_id, uint64_t expected_version) {
  auto reply = Fcall("lk_s3_remove", {session_id, absl::StrCat(expected_version)});
  if (!reply.ok()) return reply.status();
  const std::vector<RedisReply>& e = reply->elements;
  if (!e.empty() && e[0].str == "ok") return absl::OkStatus();
  if (e.size() >= 3 && e[1].str == "not_found") return NoSuchSession(session_id);
  if (e.size() >= 3 && e[1].str == "stale") return StaleSessionVersion(session_id, e[2].str, expected_version);
  return absl::InternalError(absl::StrCat("redis: lk_s3_remove: unexpected reply ", reply->DebugString()));
}

absl::Status RedisSessionStore::AppendEvent(const v1::WatchSessionsResponse& event) {
  return Fcall("lk_s3_append", {event.SerializeAsString(), log_length_}).status();
}

absl::StatusOr<std::string> RedisSessionStore::LogTail() { return ReadLogTail(*client_, prefix_, "slog"); }

absl::StatusOr<LogPage<v1::WatchSessionsResponse>> RedisSessionStore::ReadLog(const std::string& after, size_t limit) {
  auto raw = ReadLogEntries(*client_, prefix_, "slog", "resume_token", after, limit);
  if (!raw.ok()) return raw.status();
  LogPage<v1::WatchSessionsResponse> page;
  page.next = raw->next;
  for (Logged<StreamEntry>& entry : raw->entries) {
    auto& f = entry.value.fields;
    Logged<v1::WatchSessionsResponse> out;
    out.position = std::move(entry.position);
    auto rec = f.find("rec");
    if (!out.value.ParseFromString(f["e"]) ||
        (rec != f.end() && !out.value.mutable_session()->ParseFromString(rec->second))) {
      // One bad entry must not stop every reader behind it: skipped, and said.
      log::LogError("session change log entry unreadable; skipped").Kv("position", out.position);
      continue;
    }
    if (rec != f.end()) {
      int64_t version = 0;
      (void)absl::SimpleAtoi(f["ver"], &version);
      out.value.mutable_session()->set_version(static_cast<uint64_t>(version));
    }
    page.entries.push_back(std::move(out));
  }
  return page;
}

absl::StatusOr<v1::Session> RedisSessionStore::Get(const std::string& session_id) {
  auto reply = Fcall("lk_s3_get", {session_id});
  if (!reply.ok()) return reply.status();
  if (reply->elements.empty()) return NoSuchSession(session_id);
  return Decode(reply->elements, 0);
}

absl::StatusOr<v1::Session> RedisSessionStore::FindLive(const std::string& owner, const std::string& call_id,
                                                        const std::string& from_tag, const std::string& branch) {
  auto reply = Fcall("lk_s3_find_live", {CallKey(owner, call_id, CallTag(from_tag, branch))});
  if (!reply.ok()) return reply.status();
  if (reply->elements.empty()) return NoLiveCall(call_id, from_tag);
  return Decode(reply->elements, 0);
}

absl::StatusOr<SessionPage> RedisSessionStore::List(const SessionFilter& filter, const std::string& cursor,
                                                    size_t limit) {
  if (limit == 0) return absl::InvalidArgumentError("limit: must be at least 1");
  auto reply = Fcall("lk_s3_list", {cursor, absl::StrCat(limit), filter.owner.value_or(""),
                                    filter.owner ? "1" : "0", filter.worker_id});
  if (!reply.ok()) return reply.status();
  if (reply->elements.empty()) return absl::InternalError("redis: lk_s3_list: empty reply");
  SessionPage page;
  page.next_cursor = reply->elements[0].str;
  auto sessions = DecodeAll(reply->elements, 1);
  if (!sessions.ok()) return sessions.status();
  page.sessions = *std::move(sessions);
  return page;
}

absl::StatusOr<std::vector<v1::Session>> RedisSessionStore::ListExpired(absl::Time now, size_t limit) {
  auto reply = Fcall("lk_s3_list_expired", {absl::StrCat(absl::ToUnixMillis(now)), absl::StrCat(limit)});
  if (!reply.ok()) return reply.status();
  return DecodeAll(reply->elements, 0);
}

absl::StatusOr<std::vector<v1::Session>> RedisSessionStore::ListLiveCall(const std::string& owner,
                                                                         const std::string& call_id, size_t limit) {
  auto reply = Fcall("lk_s3_call_live", {absl::StrCat(owner, std::string(1, kSep), call_id), absl::StrCat(limit)});
  if (!reply.ok()) return reply.status();
  return DecodeAll(reply->elements, 0);
}

absl::StatusOr<uint64_t> RedisSessionStore::LiveCount(const std::string& owner) {
  auto reply = Fcall("lk_s3_live_count", {owner});
  if (!reply.ok()) return reply.status();
  return static_cast<uint64_t>(ReplyInt(*reply));
}

}  // namespace latchkey::control::redis
