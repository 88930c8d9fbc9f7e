#pragma once
// SessionStore on Redis: every operation is one FCALL of a function in session_functions (atomic on
// the primary, one round trip), so control replicas share sessions with the same compare-and-set
// writes, Call-ID, worker and owner indexes and per-PBX live counts as the in-memory store.
// Redis unreachable or failing over: UNAVAILABLE.
#include <string>

#include "absl/strings/str_cat.h"

#include "services/control/store/redis/redis_client.h"
#include "services/control/store/session_store.h"

namespace latchkey::control::redis {

class RedisSessionStore : public SessionStore {
 public:
  // `prefix` starts every key of this deployment (e.g. "lk:"); the client must load
  // SessionFunctionsSource() on each connection (LoadFunctionsOnConnect does).
  RedisSessionStore(RedisClient* client, std::string prefix, uint64_t log_length = kDefaultLogLength)
      : client_(client), prefix_(std::move(prefix)), log_length_(absl::StrCat(log_length)) {}

  absl::StatusOr<v1::Session> Write(const v1::Session& session, const SessionWrite& write) override;
  absl::Status Remove(const std::string& session_id, uint64_t expected_version) override;
  absl::StatusOr<v1::Session> Get(const std::string& session_id) override;
  absl::StatusOr<v1::Session> FindLive(const std::string& owner, const std::string& call_id,
                                       const std::string& from_tag, const std::string& branch = "") override;
  absl::StatusOr<SessionPage> List(const SessionFilter& filter, const std::string& cursor, size_t limit) override;
  absl::StatusOr<std::vector<v1::Session>> ListExpired(absl::Time now, size_t limit) override;
  absl::StatusOr<std::vector<v1::Session>> ListLiveCall(const std::string& owner, const std::string& call_id,
                                                        size_t limit) override;
  absl::StatusOr<uint64_t> LiveCount(const std::string& owner) override;
  absl::Status AppendEvent(const v1::WatchSessionsResponse& event) override;
  absl::StatusOr<std::string> LogTail() override;
  absl::StatusOr<LogPage<v1::WatchSessionsResponse>> ReadLog(const std::string& after, size_t limit) override;

 private:
  absl::StatusOr<RedisReply> Fcall(const char* function, std::vector<std::string> args);

  RedisClient* client_;
  const std::string prefix_;
  const std::string log_length_;
};

}  // namespace latchkey::control::redis
