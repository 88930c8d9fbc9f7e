#pragma once
// The relay workers every control replica shares: soft state, kept alive by heartbeats, so that a
// worker registered through one replica heartbeats through any other and every replica places calls
// on it. The replicas' WorkerRegistry caches these records; the store decides.
//
// Rules, for every implementation (each method is one atomic step):
// - Register replaces the record whole: a new registration id, not lost, the heartbeat `now`.
// - Heartbeat succeeds only for the current registration id of a worker not marked lost (a lost
//   worker must register again so control re-learns its sessions); NOT_FOUND otherwise.
// - MarkLost marks a worker lost when its last heartbeat is older than `silent_for`, and says whether
//   this call did it: of several replicas sweeping, exactly one acts on a loss.
// - Forget deletes a worker marked lost whose last heartbeat is older than `silent_for`.
// - A drain an operator requests is kept apart from the worker's own: undraining withdraws only the
//   operator's.
// Redis unreachable: UNAVAILABLE.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "latchkey/v1/nat_control.pb.h"
#include "latchkey/v1/worker.pb.h"

namespace latchkey::control {

struct WorkerRecord {
  // Registration fields, registered_at, last reported load and last heartbeat. `state` is derived:
  // LOST if marked lost, else DRAINING if either drain is set, else READY.
  v1::Worker worker;
  std::string registration_id;
  bool drain_requested = false;  // by an operator
  bool worker_draining = false;  // the worker's own report (shutting down)
  bool lost = false;
};

// The derived state, set on `record.worker`.
void SetDerivedState(WorkerRecord* record);

class WorkerStore {
 public:
  virtual ~WorkerStore() = default;

  // `request` is validated and canonical; the record as stored is returned.
  virtual absl::StatusOr<WorkerRecord> Register(const v1::RegisterWorkerRequest& request,
                                                const std::string& registration_id, absl::Time now) = 0;
  virtual absl::StatusOr<WorkerRecord> Heartbeat(const v1::HeartbeatRequest& request, absl::Time now) = 0;
  // NOT_FOUND if the worker is unknown.
  virtual absl::StatusOr<WorkerRecord> SetDrainRequested(const std::string& worker_id, bool drain) = 0;
  virtual absl::StatusOr<bool> MarkLost(const std::string& worker_id, absl::Time now, absl::Duration silent_for) = 0;
  virtual absl::StatusOr<bool> Forget(const std::string& worker_id, absl::Time now, absl::Duration silent_for) = 0;
  // Every worker, ordered by id.
  virtual absl::StatusOr<std::vector<WorkerRecord>> List() = 0;
};

}  // namespace latchkey::control
