#include "services/control/store/open_stores.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/time/proto_time.h"
#include "services/control/store/memory_binding_store.h"
#include "services/control/store/memory_session_store.h"
#include "services/control/store/memory_worker_store.h"
#include "services/control/store/redis/fcall.h"
#include "services/control/store/redis/redis_binding_store.h"
#include "services/control/store/redis/redis_session_store.h"
#include "services/control/store/redis/redis_worker_store.h"

namespace latchkey::control {

absl::StatusOr<Stores> OpenStores(const v1::ControlConfig& config,
                                  std::function<void(redis::RedisConnectionEvent)> on_redis_event) {
  Stores stores;
  const uint64_t log_length = config.event_log_length() ? config.event_log_length() : kDefaultLogLength;
  const std::string& store = config.store();
  if (store == "memory") {
    stores.bindings = std::make_unique<MemoryBindingStore>(log_length);
    stores.sessions = std::make_unique<MemorySessionStore>(log_length);
    stores.workers = std::make_unique<MemoryWorkerStore>();
    stores.keepalive_lease = std::make_unique<MemoryLease>();
    stores.description = "memory";
    return stores;
  }
  if (!absl::StartsWith(store, "redis://") && !absl::StartsWith(store, "redis+sentinel://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "store: \"", store, "\" is not memory, redis://HOST:PORT or redis+sentinel://HOST:PORT[,...]/MASTER_NAME"));
  }
  auto target = redis::ParseRedisTarget(store);
  if (!target.ok()) return target.status();
  redis::RedisClientOptions options;
  options.target = *std::move(target);
  options.command_timeout = FromProto(config.store_timeout());
  options.on_connected = redis::LoadFunctionsOnConnect;
  options.on_event = std::move(on_redis_event);
  auto client = redis::RedisClient::Start(std::move(options));
  if (!client.ok()) return client.status();
  stores.redis = *std::move(client);
  stores.bindings = std::make_unique<redis::RedisBindingStore>(stores.redis.get(), config.store_key_prefix(), log_length);
  stores.sessions = std::make_unique<redis::RedisSessionStore>(stores.redis.get(), config.store_key_prefix(), log_length);
  stores.workers = std::make_unique<redis::RedisWorkerStore>(stores.redis.get(), config.store_key_prefix());
  stores.keepalive_lease = std::make_unique<redis::RedisLease>(stores.redis.get(), config.store_key_prefix(), "leader");
  stores.description = store;
  stores.durable = true;
  return stores;
}

}  // namespace latchkey::control
