#include "services/control/store/memory_worker_store.h"

#include "absl/strings/str_cat.h"
#include "common/time/proto_time.h"
#include "services/control/store/store_errors.h"

namespace latchkey::control {
WorkerRecord NewWorkerRecord(const v1::RegisterWorkerRequest& request, const std::string& registration_id,
                             absl::Time now) {
  WorkerRecord record;
  v1::Worker& w = record.worker;
  w.set_worker_id(request.worker_id());
  w.set_grpc_address(request.grpc_address());
  w.mutable_advertised_ips()->CopyFrom(request.advertised_ips());
  w.mutable_keepalive_source_ips()->CopyFrom(request.keepalive_source_ips());
  w.set_keepalive_mode(request.keepalive_mode());
  w.set_port_min(request.port_min());
  w.set_port_max(request.port_max());
  w.set_version(request.version());
  *w.mutable_load() = request.load();
  *w.mutable_registered_at() = ToProto(now);
  *w.mutable_last_heartbeat() = ToProto(now);
  record.registration_id = registration_id;
  record.worker_draining = request.draining();
  return record;
}

absl::StatusOr<WorkerRecord> MemoryWorkerStore::Register(const v1::RegisterWorkerRequest& request,
                                                         const std::string& registration_id, absl::Time now) {
  WorkerRecord record = NewWorkerRecord(request, registration_id, now);
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(request.worker_id());
  // An operator's drain outlives the worker's restarts.
  if (it != workers_.end()) record.drain_requested = it->second.drain_requested;
  SetDerivedState(&record);
  workers_[request.worker_id()] = record;
  return record;
}

absl::StatusOr<WorkerRecord> MemoryWorkerStore::Heartbeat(const v1::HeartbeatRequest& request, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(request.worker_id());
  if (it == workers_.end() || it->second.registration_id != request.registration_id() || it->second.lost) {
    return WorkerNotRegistered(request.worker_id());
  }
  WorkerRecord& record = it->second;
  *record.worker.mutable_last_heartbeat() = ToProto(now);
  *record.worker.mutable_load() = request.load();
  record.worker_draining = request.draining();
  SetDerivedState(&record);
  return record;
}

absl::StatusOr<WorkerRecord> MemoryWorkerStore::SetDrainRequested(const std::string& worker_id, bool drain) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return NoSuchWorker(worker_id);
  it->second.drain_requested = drain;
  SetDerivedState(&it->second);
  return it->second;
}

absl::StatusOr<bool> MemoryWorkerStore::MarkLost(const std::string& worker_id, absl::Time now,
                                                 absl::Duration silent_for) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || it->second.lost || now - FromProto(it->second.worker.last_heartbeat()) <= silent_for) {
    return false;
  }
  it->second.lost = true;
  SetDerivedState(&it->second);
  return true;
}

absl::StatusOr<bool> MemoryWorkerStore::Forget(const std::string& worker_id, absl::Time now,
                                               absl::Duration silent_for) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || !it->second.lost || now - FromProto(it->second.worker.last_heartbeat()) <= silent_for) {
    return false;
  }
  workers_.erase(it);
  return true;
}

absl::StatusOr<std::vector<WorkerRecord>> MemoryWorkerStore::List() {
  absl::MutexLock lock(&mu_);
  std::vector<WorkerRecord> out;
  out.reserve(workers_.size());
  for (const auto& [id, record] : workers_) out.push_back(record);
  return out;
}

}  // namespace latchkey::control
