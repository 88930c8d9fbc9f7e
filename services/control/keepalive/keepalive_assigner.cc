#include "services/control/keepalive/keepalive_assigner.h"

#include "absl/container/flat_hash_set.h"
#include "absl/hash/hash.h"
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
                                     EventFeed<BindingLogEntry>* feed, const Leadership* leadership,
                                     ControlMetrics* metrics)
    : options_(options), store_(store), workers_(workers), feed_(feed), leadership_(leadership), metrics_(metrics) {}

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
  if (reader_) feed_->Close(reader_);
  reader_.reset();
}

bool KeepaliveAssigner::Flushed(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  auto tail = store_->LogTail();
  if (!tail.ok()) return false;
  while (absl::Now() < deadline) {
    if (!leadership_->leading()) return true;
    absl::MutexLock lock(&mu_);
    const uint64_t start = passes_;
    auto passed = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return passes_ > start || stopping_; };
    if (!mu_.AwaitWithDeadline(absl::Condition(&passed), deadline) || stopping_) return false;
    // The pass just completed sent everything its reader had read; enough if that reached the tail.
    if (reader_ && feed_->Reached(*reader_, *tail)) return true;
  }
  return false;
}

bool KeepaliveAssigner::Send(const std::string& worker_id, v1::SetKeepalivesRequest& request, uint64_t token) {
  auto worker = workers_->Get(worker_id);
  if (!worker.ok()) return false;  // gone or lost: the next resync covers its bindings
  request.set_fencing_token(token);
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

namespace {

uint64_t Digest(const v1::KeepaliveTarget& target) {
  std::string bytes;
  target.SerializeToString(&bytes);
  return absl::Hash<std::string>{}(bytes);
}

}  // namespace

bool KeepaliveAssigner::Forward(uint64_t token) {
  struct Changes {
    absl::flat_hash_map<std::string, v1::KeepaliveTarget> upserts;
    absl::flat_hash_set<std::string> removes;
  };
  absl::flat_hash_map<std::string, Changes> batch;
  // Bounded per pass, so a flood of changes still lets the worker set be checked between passes.
  for (int page = 0; page < 20; ++page) {
    auto entries = reader_->Next(options_.chunk, absl::ZeroDuration());
    if (!entries.ok()) {
      log::LogWarning("keepalive leader lost its place in the binding log; resyncing")
          .Kv("error", entries.status().ToString());
      feed_->Close(reader_);
      auto fresh = feed_->Open("", /*fall_back_to_store=*/true);
      absl::MutexLock lock(&mu_);
      reader_ = std::move(fresh);
      return false;
    }
    if (entries->empty()) break;
    for (const Logged<BindingLogEntry>& entry : *entries) {
      const v1::Binding& binding = entry.value.binding;
      const std::string& id = binding.binding_id();
      const bool removed = entry.value.type == v1::BINDING_EVENT_TYPE_RELEASED ||
                           entry.value.type == v1::BINDING_EVENT_TYPE_EXPIRED;
      // The worker first: without one (no keepalive workers, or none for this registrar) the
      // target, which parses the Contact, is not needed.
      std::string worker = removed ? "" : AssignedWorker(*workers_, binding);
      auto previous = sent_.find(id);
      if (worker.empty() && previous == sent_.end()) continue;
      std::optional<v1::KeepaliveTarget> target = worker.empty() ? std::nullopt : KeepaliveTargetOf(binding);
      if (!target) worker.clear();
      if (previous != sent_.end() && previous->second.worker_id != worker) {
        Changes& old = batch[previous->second.worker_id];
        old.upserts.erase(id);
        old.removes.insert(id);
      }
      if (worker.empty()) {
        if (previous != sent_.end()) sent_.erase(previous);
        continue;
      }
      const uint64_t digest = Digest(*target);
      // A refresh that changes nothing a worker uses needs no message (the usual REGISTER refresh).
      if (previous != sent_.end() && previous->second.worker_id == worker && previous->second.digest == digest) continue;
      Changes& changes = batch[worker];
      changes.removes.erase(id);
      changes.upserts[id] = *std::move(target);
      sent_[id] = Sent{worker, digest};
    }
  }
  bool ok = true;
  for (auto& [worker_id, changes] : batch) {
    v1::SetKeepalivesRequest request;
    request.set_complete(true);
    for (auto& [id, target] : changes.upserts) *request.add_upsert() = std::move(target);
    for (const std::string& id : changes.removes) request.add_remove(id);
    if (!Send(worker_id, request, token) && workers_->Get(worker_id).ok()) ok = false;
  }
  return ok;
}

bool KeepaliveAssigner::Resync(uint64_t token) {
  std::vector<std::string> ready;     // may be assigned bindings
  std::vector<std::string> retiring;  // alive but draining: told to keep nothing
  for (const v1::Worker& w : workers_->List()) {
    if (w.keepalive_source_ips().empty()) continue;
    if (w.state() == v1::WORKER_STATE_READY) ready.push_back(w.worker_id());
    if (w.state() == v1::WORKER_STATE_DRAINING) retiring.push_back(w.worker_id());
  }
  metrics_->keepalive_resyncs->Increment();
  const absl::Time started = absl::Now();
  bool ok = true;
  sent_.clear();
  absl::flat_hash_map<std::string, v1::SetKeepalivesRequest> open;
  absl::flat_hash_set<std::string> failed;  // a worker that missed a chunk gets no more of this pass
  for (const std::string& id : ready) open[id].set_replace_all(true);
  auto flush = [&](const std::string& worker_id, bool complete) {
    v1::SetKeepalivesRequest& request = open[worker_id];
    request.set_complete(complete);
    // Never "complete" after a lost chunk: the worker would drop that chunk's bindings.
    if (!failed.contains(worker_id) && !Send(worker_id, request, token)) {
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
      sent_[binding.binding_id()] = Sent{worker, Digest(*target)};
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
    if (!Send(id, empty, token)) ok = false;
  }
  log::LogInfo("keepalive assignments synced")
      .Kv("workers", ready.size())
      .Kv("bindings", total)
      .Kv("ok", ok)
      .Kv("fencing_token", token)
      .Kv("ms", absl::ToInt64Milliseconds(absl::Now() - started));
  return ok;
}

void KeepaliveAssigner::Run() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.flush_interval)) return;
    }
    const uint64_t token = leadership_->token();
    if (token == 0) {
      // Another replica leads: it has the workers' sets; start afresh if the lease comes back.
      if (reader_) feed_->Close(reader_);
      absl::MutexLock lock(&mu_);
      reader_.reset();
      sent_.clear();
      synced_token_ = 0;
      ++passes_;
      continue;
    }
    if (token != synced_token_ || !reader_) {
      // Newly leading: follow the log from here, after a complete set for every worker.
      if (reader_) feed_->Close(reader_);
      auto reader = feed_->Open("", /*fall_back_to_store=*/true);
      absl::MutexLock lock(&mu_);
      reader_ = std::move(reader);
      synced_token_ = token;
      synced_version_ = UINT64_MAX;
    }
    const uint64_t version = workers_->membership_version();
    if (version != synced_version_) {
      // A failed pass is retried on the next round (after the flush interval).
      if (!Resync(token)) continue;
      synced_version_ = version;
    }
    // A worker that missed changes gets its whole set again.
    if (!Forward(token)) synced_version_ = UINT64_MAX;
    absl::MutexLock lock(&mu_);
    ++passes_;
  }
}

}  // namespace latchkey::control
