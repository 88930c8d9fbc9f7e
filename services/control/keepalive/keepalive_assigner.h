#pragma once
// Which relay worker keeps each binding's NAT mapping open, and telling the workers.
//
// The assignment is a function of the binding and the set of READY workers
// (WorkerRegistry::KeepaliveWorkerFor: rendezvous hashing among workers that can send from the
// binding's registrar address), so it is never stored and every control replica computes the same.
// Changes reach workers in batches from one thread:
// - a binding stored, refreshed or removed queues an upsert or removal for its worker;
// - whenever the worker set changes (a worker registers, drains, is lost, comes back), every READY
//   worker gets its complete set again (SetKeepalives replace_all ... complete), streamed from the
//   store in pages; the moved bindings leave their old worker in the same pass, so no binding goes
//   unpinged, or is pinged by two workers, for longer than one pass.
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "latchkey/v1/worker.pb.h"
#include "services/control/bindings/binding_observer.h"
#include "services/control/metrics/control_metrics.h"
#include "services/control/store/binding_store.h"
#include "services/control/workers/worker_registry.h"

namespace latchkey::control {

// What a worker needs to keep `binding` alive; nullopt if it needs no keepalive from us (NONE,
// connection-oriented transports) or its record is unusable.
std::optional<v1::KeepaliveTarget> KeepaliveTargetOf(const v1::Binding& binding);

struct KeepaliveAssignerOptions {
  absl::Duration flush_interval = absl::Milliseconds(100);
  size_t chunk = 5000;  // targets per SetKeepalives call
  absl::Duration call_timeout = absl::Seconds(10);
};

class KeepaliveAssigner : public BindingObserver {
 public:
  KeepaliveAssigner(KeepaliveAssignerOptions options, BindingStore* store, WorkerRegistry* workers, ControlMetrics* metrics);
  ~KeepaliveAssigner() override;

  void Start();
  void Stop();

  void OnBindingStored(const v1::Binding* previous, const v1::Binding& binding) override;
  void OnBindingRemoved(const v1::Binding& binding) override;
  // Tests: wait until everything queued so far has been sent (or failed); false on timeout.
  bool Flushed(absl::Duration timeout);

 private:
  struct Pending {
    absl::flat_hash_map<std::string, v1::KeepaliveTarget> upserts;
    absl::flat_hash_set<std::string> removes;
  };
  void Run();
  // A complete set for every READY keepalive worker; false if a worker did not take it.
  bool Resync();
  bool FlushPending();
  bool Send(const std::string& worker_id, const v1::SetKeepalivesRequest& request);

  const KeepaliveAssignerOptions options_;
  BindingStore* store_;
  WorkerRegistry* workers_;
  ControlMetrics* metrics_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Pending> pending_ ABSL_GUARDED_BY(mu_);
  uint64_t queued_ ABSL_GUARDED_BY(mu_) = 0;  // changes queued so far
  uint64_t sent_ ABSL_GUARDED_BY(mu_) = 0;    // of those, handled by a flush
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t synced_version_ = UINT64_MAX;  // flush thread only
  std::thread thread_;
};

}  // namespace latchkey::control
