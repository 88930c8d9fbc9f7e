#pragma once
// Registrations: decides NAT, rewrites the Contact, plans keepalives and keeps one binding per AOR and
// contact (or +sip.instance) in the store, expiring it when the endpoint stops refreshing.
// Holds no lock and no state of its own: every change is one atomic BindingStore operation, so any
// number of control replicas may serve the same bindings.
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/grpc/auth.h"
#include "common/sip/contact.h"
#include "latchkey/v1/nat_control.pb.h"
#include "latchkey/v1/worker.pb.h"
#include "services/control/metrics/control_metrics.h"
#include "services/control/nat/nat_detector.h"
#include "services/control/store/binding_store.h"
#include "services/control/workers/worker_registry.h"

namespace latchkey::control {

using BindingEvent = v1::WatchBindingsResponse;
using Clock = std::function<absl::Time()>;

struct BindingManagerOptions {
  absl::Duration grace = absl::Seconds(30);
  uint64_t max_bindings = 5'000'000;
  uint64_t max_bindings_per_pbx = 1'000'000;
};

class BindingManager {
 public:
  BindingManager(BindingManagerOptions options, BindingStore* store, const NatDetector* detector,
                 const WorkerRegistry* workers, ControlMetrics* metrics, std::function<void()> logged,
                 Clock clock);

  // Validates every field (INVALID_ARGUMENT naming it), then creates, refreshes or (expires 0) removes.
  // A binding belongs to the identity that created it: the same AOR and contact from another PBX is
  // another binding, and another PBX's binding is NOT_FOUND to the caller (no oracle).
  absl::StatusOr<v1::AllocateBindingResponse> Allocate(const v1::AllocateBindingRequest& request,
                                                       const grpcutil::Caller& caller);
  // The same without blocking on the store (what the gRPC handler uses; Allocate waits for it):
  // `done` runs once, possibly on the store's I/O thread (a remote store).
  using AllocateDone = std::function<void(absl::StatusOr<v1::AllocateBindingResponse>)>;
  void AllocateAsync(const v1::AllocateBindingRequest& request, const grpcutil::Caller& caller, AllocateDone done);
  absl::StatusOr<v1::Binding> Get(const std::string& binding_id, const grpcutil::Caller& caller);
  absl::StatusOr<v1::ListBindingsResponse> List(const v1::ListBindingsRequest& request, const grpcutil::Caller& caller);
  absl::StatusOr<v1::Binding> Release(const std::string& binding_id, const grpcutil::Caller& caller);

  // Removes bindings past their expiry; returns how many. Cost is proportional to what expired.
  size_t SweepExpired();

  // The watchers' event for a change-log entry: its binding with the derived fields filled in.
  absl::StatusOr<BindingEvent> EventOf(const BindingLogEntry& entry) const;
  // A keepalive worker's report: the binding became unreachable or reachable again.
  void OnKeepaliveEvent(const std::string& worker_id, const v1::KeepaliveEvent& event);

 private:
  // A REGISTER checked and decided, before the store is touched.
  struct Registration {
    explicit Registration(sip::Contact c) : contact(std::move(c)) {}
    sip::Contact contact;
    BindingIdentity identity;
    v1::Binding candidate;
    BindingLimits limits;
    absl::Duration granted;
    absl::Time now;
    std::string source;  // for the log line of a source change
    bool unregister = false;
  };
  absl::StatusOr<Registration> Prepare(const v1::AllocateBindingRequest& request, const grpcutil::Caller& caller) const;
  absl::StatusOr<v1::AllocateBindingResponse> Unregister(Registration& r, const v1::AllocateBindingRequest& request);
  // What the store's answer means: counters, the reply.
  absl::StatusOr<v1::AllocateBindingResponse> Complete(Registration& r, absl::StatusOr<BindingChange> change);
  // UpsertAsync, drawing another id (up to kMaxIdDraws in all) if the drawn one is taken.
  void Store(std::shared_ptr<Registration> r, int draw, AllocateDone done);
  // A stored record with its derived fields filled in, as every reply and event carries it.
  absl::StatusOr<v1::Binding> Decorated(v1::Binding binding) const;
  void CountVerdict(const v1::Binding& binding, int delta);
  void Decorate(const sip::Contact& contact, v1::Binding* binding) const;
  // A change was logged: `logged` (the event feed tails at once).
  void Logged() const;
  v1::KeepalivePlan PlanKeepalive(const v1::Binding& binding, const v1::NatPolicy& policy) const;

  const BindingManagerOptions options_;
  BindingStore* store_;
  const NatDetector* detector_;
  const WorkerRegistry* workers_;
  ControlMetrics* metrics_;
  std::function<void()> logged_;
  Clock clock_;
};

}  // namespace latchkey::control
