#pragma once
// Calling the stores' Redis functions: one FCALL with the key prefix as its one key, and loading
// the function libraries on every connection.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/control/store/redis/redis_client.h"

namespace latchkey::control::redis {

// FCALL `function` 1 `prefix` `args...`. A Redis error reply becomes UNAVAILABLE when it means the
// functions are missing (a fresh primary before its first load), INTERNAL otherwise.
absl::StatusOr<RedisReply> CallFunction(RedisClient& client, const std::string& prefix, const char* function,
                                        std::vector<std::string> args);

// The same without blocking: `done` runs once, on the client's loop thread (or at once when the call
// fails fast).
void CallFunctionAsync(RedisClient& client, const std::string& prefix, const char* function,
                       std::vector<std::string> args, std::function<void(absl::StatusOr<RedisReply>)> done);

// Milliseconds since the epoch, rounded up: an expiry stored in Redis never falls due early.
int64_t CeilUnixMillis(absl::Time t);

// An integer reply, or a string one holding a number; 0 otherwise.
int64_t ReplyInt(const RedisReply& reply);

// An on_connected hook: FUNCTION LOAD REPLACE of every library the stores call, ahead of any command
// on the new connection (functions are replicated and persisted, but a wiped or new primary may
// lack them, and an upgrade brings new ones).
void LoadFunctionsOnConnect(RedisSession& session);

}  // namespace latchkey::control::redis
