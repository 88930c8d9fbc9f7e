#pragma once
// BindingStore on Redis: every operation is one FCALL of a function in binding_functions (atomic on
// the primary, one round trip), so any number of control replicas can share the bindings. The
// record's sticky fields (owner, creation time, reachability, source changes, version) are kept
// beside the REGISTER's serialized record, so the functions apply the refresh rules of
// binding_record without parsing protobuf. Redis unreachable or failing over: UNAVAILABLE.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/control/store/binding_store.h"
#include "services/control/store/redis/redis_client.h"

namespace latchkey::control::redis {

class RedisBindingStore : public BindingStore {
 public:
  // `prefix` starts every key of this deployment (e.g. "lk:"). The client must load the functions on
  // each connection (LoadFunctionsOnConnect in fcall.h).
  RedisBindingStore(RedisClient* client, std::string prefix, uint64_t log_length = kDefaultLogLength)
      : client_(client), prefix_(std::move(prefix)), log_length_(absl::StrCat(log_length)) {}

  absl::StatusOr<BindingChange> Upsert(const BindingIdentity& identity, const v1::Binding& candidate,
                                       const BindingLimits& limits) override;
  // One FCALL whose reply completes `done` on the client's loop thread: no RPC thread waits.
  void UpsertAsync(const BindingIdentity& identity, const v1::Binding& candidate, const BindingLimits& limits,
                   UpsertDone done) override;
  absl::StatusOr<v1::Binding> RemoveIdentity(const BindingIdentity& identity) override;
  absl::StatusOr<v1::Binding> Remove(const std::string& binding_id, const std::optional<std::string>& owner) override;
  absl::StatusOr<v1::Binding> Get(const std::string& binding_id) override;
  absl::StatusOr<std::optional<v1::Binding>> SetReachability(const std::string& binding_id,
                                                             v1::Reachability reachability) override;
  absl::StatusOr<BindingPage> List(const BindingFilter& filter, const std::string& cursor, size_t limit) override;
  absl::StatusOr<std::vector<v1::Binding>> TakeExpired(absl::Time now, size_t limit) override;
  absl::StatusOr<uint64_t> Count() override;
  absl::StatusOr<std::string> LogTail() override;
  absl::StatusOr<LogPage<BindingLogEntry>> ReadLog(const std::string& after, size_t limit) override;

 private:
  absl::StatusOr<RedisReply> Fcall(const char* function, std::vector<std::string> args);
  std::vector<std::string> UpsertArgs(const BindingIdentity& identity, const v1::Binding& candidate,
                                      const BindingLimits& limits) const;
  static absl::StatusOr<BindingChange> UpsertResult(const BindingIdentity& identity, const v1::Binding& candidate,
                                                    const BindingLimits& limits, absl::StatusOr<RedisReply> reply);

  RedisClient* client_;
  const std::string prefix_;
  const std::string log_length_;  // as the functions take it
};

}  // namespace latchkey::control::redis
