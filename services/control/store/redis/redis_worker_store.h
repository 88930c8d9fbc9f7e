#pragma once
// WorkerStore and Lease on Redis: each operation one FCALL of worker_functions, so every control
// replica shares the workers' registrations and heartbeats and agrees on one lease holder. Redis
// unreachable or failing over: UNAVAILABLE.
#include <string>

#include "services/control/store/lease.h"
#include "services/control/store/redis/redis_client.h"
#include "services/control/store/worker_store.h"

namespace latchkey::control::redis {

class RedisWorkerStore : public WorkerStore {
 public:
  RedisWorkerStore(RedisClient* client, std::string prefix) : client_(client), prefix_(std::move(prefix)) {}

  absl::StatusOr<WorkerRecord> Register(const v1::RegisterWorkerRequest& request, const std::string& registration_id,
                                        absl::Time now) override;
  absl::StatusOr<WorkerRecord> Heartbeat(const v1::HeartbeatRequest& request, absl::Time now) override;
  absl::StatusOr<WorkerRecord> SetDrainRequested(const std::string& worker_id, bool drain) override;
  absl::StatusOr<bool> MarkLost(const std::string& worker_id, absl::Time now, absl::Duration silent_for) override;
  absl::StatusOr<bool> Forget(const std::string& worker_id, absl::Time now, absl::Duration silent_for) override;
  absl::StatusOr<std::vector<WorkerRecord>> List() override;

 private:
  // MarkLost and Forget: `function` acts if the worker has been silent longer than `silent_for`.
  absl::StatusOr<bool> IfSilent(const char* function, const std::string& worker_id, absl::Time now,
                                absl::Duration silent_for);

  RedisClient* client_;
  const std::string prefix_;
};

// Redis keeps the time (PX): `now` is not used, so replicas' clocks need not agree.
class RedisLease : public Lease {
 public:
  RedisLease(RedisClient* client, std::string prefix, std::string name)
      : client_(client), prefix_(std::move(prefix)), name_(std::move(name)) {}
  absl::StatusOr<uint64_t> Acquire(const std::string& holder, absl::Time now, absl::Duration ttl) override;
  absl::Status Release(const std::string& holder) override;

 private:
  RedisClient* client_;
  const std::string prefix_;
  const std::string name_;
};

}  // namespace latchkey::control::redis
