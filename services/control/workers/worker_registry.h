#pragma once
// The relay workers control knows: their registrations, heartbeats, drain state, liveness, and a
// client stub for each. Kept in memory: after a control restart workers register again within one
// heartbeat (their heartbeat answers NOT_FOUND).
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "latchkey/v1/config.pb.h"
#include "latchkey/v1/worker.grpc.pb.h"
#include "services/control/metrics/control_metrics.h"

namespace latchkey::control {

struct WorkerRegistryOptions {
  absl::Duration heartbeat_interval = absl::Seconds(1);
  uint32_t lost_after_missed = 3;
  // A lost worker is forgotten (no longer listed, its id free) after this.
  absl::Duration forget_lost_after = absl::Hours(1);
  // Channel security for the calls to workers: each worker's certificate must name its worker id.
  v1::TlsConfig tls;
};

struct WorkerHandle {
  std::string worker_id;
  v1::Worker worker;
  std::shared_ptr<v1::RelayService::StubInterface> stub;
};

class WorkerRegistry {
 public:
  WorkerRegistry(WorkerRegistryOptions options, ControlMetrics* metrics);

  // What a registration claims, checked against the other live workers: a media range on an address
  // another worker advertises with an overlapping range is PERMISSION_DENIED (it would capture that
  // worker's place in loop protection and SDP checks).
  absl::Status CheckClaims(const v1::RegisterWorkerRequest& request) const;
  // Records a (re-)registration and returns its registration id.
  std::string Register(const v1::RegisterWorkerRequest& request, absl::Time now);
  // NOT_FOUND when the worker or its registration id is unknown: the worker must register again.
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& request, absl::Time now);
  // Every live worker's media range (loop protection), as heartbeats and registrations answer it.
  void MediaRanges(google::protobuf::RepeatedPtrField<v1::RelayMediaRange>* out) const;
  // Whether `ip`:`port` is in a live worker's media range: an SDP naming it chains two relays.
  bool IsRelayMediaAddress(const std::string& ip, uint32_t port) const;
  // Marks a worker draining; NOT_FOUND if unknown.
  absl::StatusOr<v1::Worker> Drain(const std::string& worker_id);
  // Withdraws an operator's drain (the worker is told on its next heartbeat); a worker draining on
  // its own (shutting down) stays draining. NOT_FOUND if unknown.
  absl::StatusOr<v1::Worker> Undrain(const std::string& worker_id);

  std::vector<v1::Worker> List() const;
  // A worker that can take one more session needing `ports_needed` ports, skipping `exclude`.
  absl::StatusOr<WorkerHandle> Place(uint32_t ports_needed, const absl::flat_hash_set<std::string>& exclude);
  // The worker carrying existing sessions; UNAVAILABLE if lost, NOT_FOUND if unknown.
  absl::StatusOr<WorkerHandle> Get(const std::string& worker_id) const;
  // Known, not lost, and heard from within two heartbeat intervals: worth a blocking call.
  bool Responsive(const std::string& worker_id, absl::Time now) const;
  // The worker that keeps a binding alive: among READY workers that can send from `registrar_ip`
  // (REGISTRAR_SOURCE), else among READY OWN_SOCKET workers, the one ranked highest for `binding_id`
  // by rendezvous hashing, so every control replica agrees and a worker joining or leaving moves only
  // its share. Empty if none.
  std::string KeepaliveWorkerFor(const std::string& registrar_ip, const std::string& binding_id) const;
  // Changes whenever the set of workers or their states changes (keepalive re-assignment).
  uint64_t membership_version() const;
  // Control released a session on this worker before the next heartbeat could say so.
  void SessionEnded(const std::string& worker_id, uint32_t ports);

  // Declares lost the workers whose heartbeats stopped; returns their ids. Forgets workers lost for
  // longer than forget_lost_after.
  std::vector<std::string> SweepLost(absl::Time now);

  absl::Duration heartbeat_interval() const { return options_.heartbeat_interval; }
  uint32_t lost_after_missed() const { return options_.lost_after_missed; }

 private:
  void AddMediaRanges(google::protobuf::RepeatedPtrField<v1::RelayMediaRange>* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  struct Entry {
    v1::Worker worker;
    std::string registration_id;
    absl::Time last_heartbeat;
    bool drain_requested = false;  // by an operator, told to the worker on its next heartbeat
    bool worker_draining = false;  // the worker's own report (shutting down)
    uint32_t pending_sessions = 0;
    uint32_t pending_ports = 0;
    std::shared_ptr<v1::RelayService::StubInterface> stub;
  };
  void UpdateStateGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WorkerRegistryOptions options_;
  ControlMetrics* metrics_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> workers_ ABSL_GUARDED_BY(mu_);
  uint64_t membership_version_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace latchkey::control
