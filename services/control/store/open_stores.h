#pragma once
// Opens the stores ControlConfig.store names (its defaults applied): the embedded in-memory ones, or
// Redis (one server, or the primary through Sentinel) for bindings, sessions, workers and the lease. INVALID_ARGUMENT
// naming `store` for a value it cannot use.
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "latchkey/v1/config.pb.h"
#include "services/control/store/binding_store.h"
#include "services/control/store/lease.h"
#include "services/control/store/redis/redis_client.h"
#include "services/control/store/session_store.h"
#include "services/control/store/worker_store.h"

namespace latchkey::control {

struct Stores {
  std::unique_ptr<redis::RedisClient> redis;  // null for "memory"; outlives the stores below
  std::unique_ptr<BindingStore> bindings;
  std::unique_ptr<SessionStore> sessions;
  std::unique_ptr<WorkerStore> workers;
  // Held by the one replica that pushes keepalive assignments and runs the sweepers.
  std::unique_ptr<Lease> keepalive_lease;
  std::string description;  // for the start-up log line: "memory", "redis+sentinel://..."
  bool durable = false;      // outlives a control restart: what it does not know was never stored
};

// `on_redis_event` (optional) is told of the Redis connection's events, on its loop thread.
absl::StatusOr<Stores> OpenStores(const v1::ControlConfig& config,
                                  std::function<void(redis::RedisConnectionEvent)> on_redis_event = nullptr);

}  // namespace latchkey::control
