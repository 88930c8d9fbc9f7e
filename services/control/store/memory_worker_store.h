#pragma once
// The embedded WorkerStore: one map behind one lock (a control process alone; workers register again
// after its restart).
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "services/control/store/worker_store.h"

namespace latchkey::control {

class MemoryWorkerStore : public WorkerStore {
 public:
  absl::StatusOr<WorkerRecord> Register(const v1::RegisterWorkerRequest& request, const std::string& registration_id,
                                        absl::Time now) override;
  absl::StatusOr<WorkerRecord> Heartbeat(const v1::HeartbeatRequest& request, absl::Time now) override;
  absl::StatusOr<WorkerRecord> SetDrainRequested(const std::string& worker_id, bool drain) override;
  absl::StatusOr<bool> MarkLost(const std::string& worker_id, absl::Time now, absl::Duration silent_for) override;
  absl::StatusOr<bool> Forget(const std::string& worker_id, absl::Time now, absl::Duration silent_for) override;
  absl::StatusOr<std::vector<WorkerRecord>> List() override;

 private:
  absl::Mutex mu_;
  std::map<std::string, WorkerRecord> workers_ ABSL_GUARDED_BY(mu_);  // ordered: List is by id
};

// The record Register stores for `request` (both stores build it the same way).
WorkerRecord NewWorkerRecord(const v1::RegisterWorkerRequest& request, const std::string& registration_id,
                             absl::Time now);

}  // namespace latchkey::control
