#include "services/control/keepalive/keepalive_assigner.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/sip/contact.h"
#include "common/time/proto_time.h"

namespace latchkey::control {
namespace {

constexpr size_t kMaxKeepaliveUri = 512;  // a worker's limit for a Request-URI

std::string AssignedWorker(const WorkerRegistry& workers, const v1::Binding& binding) {
  return workers.KeepaliveWorkerFor(binding.registrar().ip(), binding.binding_id());
}

}  // namespace

std::optional<v1::KeepaliveTarget> KeepaliveTargetOf(const v1::Binding& binding) {
  const v1::KeepalivePlan& plan = binding.keepalive();
  if (binding.transport() != v1::TRANSPORT_UDP) return std::nullopt;
  if (plan.method() != v1::KEEPALIVE_METHOD_OPTIONS && plan.method() != v1::KEEPALIVE_METHOD_CRLF) return std::nullopt;
  // What a worker accepts (KeepaliveTable::Upsert): anything else would be refused there anyway.
  const absl::Duration interval = FromProto(plan.interval());
  if (interval < absl::Seconds(1) || interval > absl::Hours(1) || plan.failure_threshold() < 1 ||
      plan.failure_threshold() > 100) {
    return std::nullopt;
  }
  auto contact = sip::Contact::Parse(binding.contact());
  if (!contact.ok() || contact->uri().text().size() > kMaxKeepaliveUri) return std::nullopt;
  v1::KeepaliveTarget target;
  target.set_binding_id(binding.binding_id());
  target.set_contact_uri(std::string(contact->uri().text()));
  *target.mutable_destination() = binding.source();
  *target.mutable_registrar() = binding.registrar();
  target.set_method(plan.method());
  *target.mutable_interval() = plan.interval();
  target.set_failure_threshold(plan.failure_threshold());
  target.set_reachability(binding.reachability());
  return target;
}

KeepaliveAssigner::KeepaliveAssigner(KeepaliveAssignerOptions options, BindingStore* store, WorkerRegistry* workers,
                                     ControlMetrics* metrics)
    : options_(options), store_(store), workers_(workers), metrics_(metrics) {}

KeepaliveAssigner::~KeepaliveAssigner() { Stop(); }

void KeepaliveAssigner::Start() {
  thread_ = std::thread([this] { Run(); });
}

void KeepaliveAssigner::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void KeepaliveAssigner::OnBindingStored(const v1::Binding* previous, const v1::Binding& binding) {
  std::optional<v1::KeepaliveTarget> target = KeepaliveTargetOf(binding);
  const std::string worker = target ? AssignedWorker(*workers_, binding) : "";
  const std::optional<v1::KeepaliveTarget> old_target = previous ? KeepaliveTargetOf(*previous) : std::nullopt;
  const std::string old_worker = old_target ? AssignedWorker(*workers_, *previous) : "";
  absl::MutexLock lock(&mu_);
  if (!old_worker.empty() && old_worker != worker) {
    Pending& p = pending_[old_worker];
    p.upserts.erase(binding.binding_id());
    p.removes.insert(binding.binding_id());
    ++queued_;
  }
  if (worker.empty()) return;
  // A refresh that changes nothing a worker uses needs no message (the usual REGISTER refresh).
  if (old_target && old_worker == worker && old_target->SerializeAsString() == target->SerializeAsString()) return;
  Pending& p = pending_[worker];
  p.removes.erase(binding.binding_id());
  p.upserts[binding.binding_id()] = *std::move(target);
  ++queued_;
}

void KeepaliveAssigner::OnBindingRemoved(const v1::Binding& binding) {
  if (!KeepaliveTargetOf(binding)) return;
  const std::string worker = AssignedWorker(*workers_, binding);
  if (worker.empty()) return;
  absl::MutexLock lock(&mu_);
  Pending& p = pending_[worker];
  p.upserts.erase(binding.binding_id());
  p.removes.insert(binding.binding_id());
  ++queued_;
}

bool KeepaliveAssigner::Flushed(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const uint64_t target = queued_;
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return sent_ >= target || stopping_; };
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout) && sent_ >= target;
}

bool KeepaliveAssigner::Send(const std::string& worker_id, const v1::SetKeepalivesRequest& request) {
  auto worker = workers_->Get(worker_id);
  if (!worker.ok()) return false;  // gone or lost: the next resync covers its bindings
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.call_timeout));
  v1::SetKeepalivesResponse response;
  grpc::Status status = worker->stub->SetKeepalives(&context, request, &response);
  if (!status.ok()) {
    metrics_->keepalive_sync_failures->Increment();
    log::LogWarning("keepalive assignment not delivered")
        .Kv("worker_id", worker_id)
        .Kv("code", static_cast<int>(status.error_code()))
        .Kv("error", status.error_message());
    return false;
  }
  metrics_->keepalive_targets_sent->Increment(request.upsert_size());
  if (response.refused_size() > 0) {
    // Delivered: a refused target stays refused however often it is sent.
    log::LogWarning("worker refused keepalive targets")
        .Kv("worker_id", worker_id)
        .Kv("count", response.refused_size())
        .Kv("first", response.refused(0));
  }
  return true;
}

bool KeepaliveAssigner::FlushPending() {
  absl::flat_hash_map<std::string, Pending> batch;
  uint64_t queued;
  {
    absl::MutexLock lock(&mu_);
    batch.swap(pending_);
    queued = queued_;
  }
  bool ok = true;
  for (auto& [worker_id, changes] : batch) {
    v1::SetKeepalivesRequest request;
    request.set_complete(true);
    for (auto& [id, target] : changes.upserts) *request.add_upsert() = std::move(target);
    for (const std::string& id : changes.removes) request.add_remove(id);
    if (!Send(worker_id, request) && workers_->Get(worker_id).ok()) ok = false;
  }
  absl::MutexLock lock(&mu_);
  sent_ = std::max(sent_, queued);
  return ok;
}

bool KeepaliveAssigner::Resync() {
  std::vector<std::string> ready;     // may be assigned bindings
  std::vector<std::string> retiring;  // alive but draining: told to keep nothing
  for (const v1::Worker& w : workers_->List()) {
    if (w.keepalive_source_ips().empty()) continue;
    if (w.state() == v1::WORKER_STATE_READY) ready.push_back(w.worker_id());
    if (w.state() == v1::WORKER_STATE_DRAINING) retiring.push_back(w.worker_id());
  }
  // Changes queued before this point are in the store already: the complete sets carry them.
  uint64_t queued;
  {
    absl::MutexLock lock(&mu_);
    pending_.clear();
    queued = queued_;
  }
  metrics_->keepalive_resyncs->Increment();
  const absl::Time started = absl::Now();
  bool ok = true;
  absl::flat_hash_map<std::string, v1::SetKeepalivesRequest> open;
  absl::flat_hash_set<std::string> failed;  // a worker that missed a chunk gets no more of this pass
  for (const std::string& id : ready) open[id].set_replace_all(true);
  auto flush = [&](const std::string& worker_id, bool complete) {
    v1::SetKeepalivesRequest& request = open[worker_id];
    request.set_complete(complete);
    // Never "complete" after a lost chunk: the worker would drop that chunk's bindings.
    if (!failed.contains(worker_id) && !Send(worker_id, request)) {
      failed.insert(worker_id);
      ok = false;
    }
    request.Clear();
  };
  size_t total = 0;
  std::string cursor;
  bool store_ok = true;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return false;
    }
    auto page = store_->List(BindingFilter(), cursor, options_.chunk);
    if (!page.ok()) {
      store_ok = false;  // a partial set must not replace the workers' complete ones
      break;
    }
    for (const v1::Binding& binding : page->bindings) {
      auto target = KeepaliveTargetOf(binding);
      if (!target) continue;
      const std::string worker = AssignedWorker(*workers_, binding);
      auto it = open.find(worker);
      if (it == open.end()) continue;  // no worker can take it (yet)
      *it->second.add_upsert() = *std::move(target);
      ++total;
      if (static_cast<size_t>(it->second.upsert_size()) >= options_.chunk) flush(worker, false);
    }
    cursor = page->next_cursor;
    if (cursor.empty()) break;
  }
  if (!store_ok) {
    log::LogWarning("keepalive assignment sync abandoned: store unreadable");
    return false;
  }
  for (const std::string& id : ready) flush(id, true);
  for (const std::string& id : retiring) {
    v1::SetKeepalivesRequest empty;
    empty.set_replace_all(true);
    empty.set_complete(true);
    if (!Send(id, empty)) ok = false;
  }
  log::LogInfo("keepalive assignments synced")
      .Kv("workers", ready.size())
      .Kv("bindings", total)
      .Kv("ok", ok)
      .Kv("ms", absl::ToInt64Milliseconds(absl::Now() - started));
  absl::MutexLock lock(&mu_);
  sent_ = std::max(sent_, queued);
  return ok;
}

void KeepaliveAssigner::Run() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.flush_interval)) return;
    }
    const uint64_t version = workers_->membership_version();
    if (version != synced_version_) {
      // A failed pass is retried on the next round (after the flush interval).
      if (Resync()) synced_version_ = version;
      continue;
    }
    if (!FlushPending()) synced_version_ = UINT64_MAX;  // a worker missed changes: give it its whole set again
  }
}

}  // namespace latchkey::control
