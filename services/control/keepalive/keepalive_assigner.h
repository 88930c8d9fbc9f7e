#pragma once
// Which relay worker keeps each binding's NAT mapping open, and telling the workers. Only the leader
// (leader/leadership.h) tells them, every request carrying its fencing token.
//
// The assignment is a function of the binding and the set of READY workers
// (WorkerRegistry::KeepaliveWorkerFor: rendezvous hashing among workers that can send from the
// binding's registrar address), so it is never stored and every control replica computes the same.
// The leader learns of changes from the bindings' change log, whichever replica made them:
// - on taking the lease, and whenever the worker set changes (a worker registers, drains, is lost,
//   comes back), every READY worker gets its complete set again (SetKeepalives replace_all ...
//   complete), streamed from the store in pages; the moved bindings leave their old worker in the
//   same pass, so no binding goes unpinged, or is pinged by two workers, for longer than one pass;
// - in between, each logged change becomes an upsert or a removal for its worker, sent in batches;
//   a refresh that changes nothing a worker uses sends nothing;
// - a leader that loses its place in the log (it fell behind what the log keeps) resyncs.
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "latchkey/v1/worker.pb.h"
#include "services/control/events/event_feed.h"
#include "services/control/leader/leadership.h"
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

class KeepaliveAssigner {
 public:
  KeepaliveAssigner(KeepaliveAssignerOptions options, BindingStore* store, WorkerRegistry* workers,
                    EventFeed<BindingLogEntry>* feed, const Leadership* leadership, ControlMetrics* metrics);
  ~KeepaliveAssigner();

  void Start();
  void Stop();
  // Tests: wait until every change logged before the call has been sent to its worker (or failed);
  // true at once on a replica that does not lead. False on timeout.
  bool Flushed(absl::Duration timeout);

 private:
  struct Sent {
    std::string worker_id;
    uint64_t digest = 0;  // of the target as sent
  };
  void Run();
  // A complete set for every READY keepalive worker; false if a worker did not take it.
  bool Resync(uint64_t token);
  // The logged changes read since the last pass, sent; false if a worker missed some.
  bool Forward(uint64_t token);
  bool Send(const std::string& worker_id, v1::SetKeepalivesRequest& request, uint64_t token);

  const KeepaliveAssignerOptions options_;
  BindingStore* store_;
  WorkerRegistry* workers_;
  EventFeed<BindingLogEntry>* feed_;
  const Leadership* leadership_;
  ControlMetrics* metrics_;

  // The flush thread's: what each binding's worker was last sent, as of the leader's view.
  absl::flat_hash_map<std::string, Sent> sent_;
  // Written by the flush thread under mu_; read by it freely, by Flushed under mu_.
  std::shared_ptr<EventFeed<BindingLogEntry>::Reader> reader_;
  uint64_t synced_version_ = UINT64_MAX;
  uint64_t synced_token_ = 0;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t passes_ ABSL_GUARDED_BY(mu_) = 0;  // completed passes that read the log to its end
  std::thread thread_;
};

}  // namespace latchkey::control
