#include "services/control/store/redis/fcall.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "services/control/store/redis/binding_functions.h"
#include "services/control/store/redis/log_functions.h"
#include "services/control/store/redis/session_functions.h"
#include "services/control/store/redis/worker_functions.h"

namespace latchkey::control::redis {

namespace {

std::vector<std::string> FcallArgv(const std::string& prefix, const char* function, std::vector<std::string> args) {
  std::vector<std::string> argv;
  argv.reserve(args.size() + 4);
  argv.push_back("FCALL");
  argv.push_back(function);
  argv.push_back("1");
  argv.push_back(prefix);
  for (std::string& arg : args) argv.push_back(std::move(arg));
  return argv;
}

absl::StatusOr<RedisReply> Checked(const char* function, absl::StatusOr<RedisReply> reply) {
  if (!reply.ok()) return reply.status();
  if (reply->is_error()) {
    if (reply->str.find("Function not found") != std::string::npos) {
      return absl::UnavailableError(absl::StrCat("redis: ", reply->str));
    }
    return absl::InternalError(absl::StrCat("redis: ", function, ": ", reply->str));
  }
  return reply;
}

}  // namespace

absl::StatusOr<RedisReply> CallFunction(RedisClient& client, const std::string& prefix, const char* function,
                                        std::vector<std::string> args) {
  return Checked(function, client.Call(FcallArgv(prefix, function, std::move(args))));
}

void CallFunctionAsync(RedisClient& client, const std::string& prefix, const char* function,
                       std::vector<std::string> args, std::function<void(absl::StatusOr<RedisReply>)> done) {
  client.CallAsync(FcallArgv(prefix, function, std::move(args)),
                   [function, done = std::move(done)](absl::StatusOr<RedisReply> reply) {
                     done(Checked(function, std::move(reply)));
                   });
}

int64_t CeilUnixMillis(absl::Time t) {
  const int64_t ms = absl::ToUnixMillis(t);
  return absl::FromUnixMillis(ms) < t ? ms + 1 : ms;
}

int64_t ReplyInt(const RedisReply& reply) {
  if (reply.type == RedisReply::Type::kInteger) return reply.integer;
  int64_t value = 0;
  if (!absl::SimpleAtoi(reply.str, &value)) return 0;
  return value;
}

void LoadFunctionsOnConnect(RedisSession& session) {
  const std::pair<const char*, const char*> libraries[] = {{kBindingLibrary, BindingFunctionsSource()},
                                                           {kSessionLibrary, SessionFunctionsSource()},
                                                           {kWorkerLibrary, WorkerFunctionsSource()},
                                                           {kLogLibrary, LogFunctionsSource()}};
  for (const auto& [name, source] : libraries) {
    session.Send({"FUNCTION", "LOAD", "REPLACE", source}, [library = std::string(name)](absl::StatusOr<RedisReply> reply) {
      if (!reply.ok() || reply->is_error()) {
        log::LogError("redis functions not loaded")
            .Kv("library", library)
            .Kv("error", reply.ok() ? reply->str : std::string(reply.status().message()));
      }
    });
  }
}

}  // namespace latchkey::control::redis
