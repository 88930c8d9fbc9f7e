#pragma once
// The relay workers this control replica knows: a cache of the shared WorkerStore (registrations,
// heartbeats, drains, losses) plus what only this process has, a client stub for each worker and the
// sessions it placed since the worker's last heartbeat. Writes go to the store first; Refresh pulls
// what other replicas wrote, so any replica answers any worker and places calls on any worker.
//
// With the embedded store, workers register again within one heartbeat of a control restart (their
// heartbeat answers NOT_FOUND); with Redis they carry on.
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
#include "services/control/store/worker_store.h"

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
  // `store` null: an embedded in-memory one, owned here.
  WorkerRegistry(WorkerRegistryOptions options, ControlMetrics* metrics, WorkerStore* store = nullptr);
  ~WorkerRegistry();

  // What a registration claims, checked against the other live workers: a media range on an address
  // another worker advertises with an overlapping range is PERMISSION_DENIED (it would capture that
  // worker's place in loop protection and SDP checks).
  absl::Status CheckClaims(const v1::RegisterWorkerRequest& request) const;
  // Records a (re-)registration and returns its registration id.
  absl::StatusOr<std::string> Register(const v1::RegisterWorkerRequest& request, absl::Time now);
  // NOT_FOUND when the worker or its registration id is unknown, or it was declared lost: the
  // worker must register again.
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

  // The cached view, ordered by id.
  std::vector<v1::Worker> List() const;
  // The store's view (refreshing the cache): what ListWorkers answers.
  absl::StatusOr<std::vector<v1::Worker>> ListFresh(absl::Time now);
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

  // Pulls the store's records into the cache (other replicas' registrations, heartbeats, drains and
  // losses). On a store error the cache stays as it was.
  absl::Status Refresh(absl::Time now);
  // Declares lost the workers whose heartbeats stopped and returns those this replica declared (of
  // several replicas sweeping, one acts on each loss). Forgets workers lost for longer than
  // forget_lost_after. A worker is not declared lost for silence while the store was unreachable:
  // its heartbeats had nowhere to go.
  std::vector<std::string> SweepLost(absl::Time now);

  absl::Duration heartbeat_interval() const { return options_.heartbeat_interval; }
  uint32_t lost_after_missed() const { return options_.lost_after_missed; }

 private:
  struct Entry {
    WorkerRecord record;
    uint32_t pending_sessions = 0;  // placed here since the last heartbeat
    uint32_t pending_ports = 0;
    std::shared_ptr<v1::RelayService::StubInterface> stub;
  };
  // Takes `record` as the worker's current state.
  void Apply(WorkerRecord record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddMediaRanges(google::protobuf::RepeatedPtrField<v1::RelayMediaRange>* out) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateStateGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Notes a store call's outcome: after an outage, silence is measured from the recovery.
  void StoreOutcome(const absl::Status& status, absl::Time now);

  const WorkerRegistryOptions options_;
  ControlMetrics* metrics_;
  std::unique_ptr<WorkerStore> owned_store_;
  WorkerStore* store_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> workers_ ABSL_GUARDED_BY(mu_);
  uint64_t membership_version_ ABSL_GUARDED_BY(mu_) = 0;
  bool store_failing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time store_recovered_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace latchkey::control
