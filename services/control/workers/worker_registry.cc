#include "services/control/workers/worker_registry.h"

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/hash/stable_hash.h"
#include "common/log/log.h"
#include "common/net/ip_address.h"
#include "common/time/proto_time.h"
#include "common/grpc/channel.h"
#include "services/control/store/memory_worker_store.h"
#include "services/control/workers/placement.h"

namespace latchkey::control {

WorkerRegistry::WorkerRegistry(WorkerRegistryOptions options, ControlMetrics* metrics, WorkerStore* store)
    : options_(options),
      metrics_(metrics),
      owned_store_(store ? nullptr : std::make_unique<MemoryWorkerStore>()),
      store_(store ? store : owned_store_.get()) {}

WorkerRegistry::~WorkerRegistry() = default;

namespace {

// The same address however it is written ("2001:DB8::10", "[2001:db8::10]", "::ffff:1.2.3.4").
bool SameAddress(absl::string_view a, absl::string_view b) {
  auto parse = [](absl::string_view text) {
    if (text.size() > 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
    return net::IpAddress::Parse(text);
  };
  auto x = parse(a);
  auto y = parse(b);
  if (!x.ok() || !y.ok()) return a == b;
  return x->Unmapped() == y->Unmapped();
}

}  // namespace

absl::Status WorkerRegistry::CheckClaims(const v1::RegisterWorkerRequest& request) const {
  if (request.port_min() == 0) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  for (const auto& [id, entry] : workers_) {
    const v1::Worker& worker = entry.record.worker;
    if (id == request.worker_id() || worker.state() == v1::WORKER_STATE_LOST) continue;
    if (worker.port_max() < request.port_min() || worker.port_min() > request.port_max()) continue;
    for (const std::string& mine : request.advertised_ips()) {
      for (const std::string& theirs : worker.advertised_ips()) {
        if (SameAddress(mine, theirs)) {
          return absl::PermissionDeniedError(absl::StrCat("advertised_ips, port_min, port_max: ", mine, " ports ",
                                                          request.port_min(), "-", request.port_max(),
                                                          " overlap worker ", id, "'s media range"));
        }
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> WorkerRegistry::Register(const v1::RegisterWorkerRequest& request, absl::Time now) {
  absl::BitGen rng;
  std::string registration_id = absl::StrFormat("%016x", absl::Uniform<uint64_t>(rng));
  auto record = store_->Register(request, registration_id, now);
  StoreOutcome(record.status(), now);
  if (!record.ok()) return record.status();
  absl::MutexLock lock(&mu_);
  Apply(*std::move(record));
  UpdateStateGauges();
  return registration_id;
}

absl::StatusOr<v1::HeartbeatResponse> WorkerRegistry::Heartbeat(const v1::HeartbeatRequest& request,
                                                                absl::Time now) {
  auto record = store_->Heartbeat(request, now);
  StoreOutcome(record.status(), now);
  if (!record.ok()) return record.status();
  v1::HeartbeatResponse response;
  response.set_drain(record->drain_requested);
  absl::MutexLock lock(&mu_);
  Apply(*std::move(record));
  UpdateStateGauges();
  AddMediaRanges(response.mutable_relays());
  return response;
}

void WorkerRegistry::Apply(WorkerRecord record) {
  Entry& entry = workers_[record.worker.worker_id()];
  const WorkerRecord& old = entry.record;
  const bool is_new = old.worker.worker_id().empty();
  const bool reregistered = old.registration_id != record.registration_id;
  const bool heard = reregistered || FromProto(record.worker.last_heartbeat()) > FromProto(old.worker.last_heartbeat());
  if (is_new || reregistered || old.worker.state() != record.worker.state() ||
      old.worker.keepalive_mode() != record.worker.keepalive_mode() ||
      !std::equal(old.worker.keepalive_source_ips().begin(), old.worker.keepalive_source_ips().end(),
                  record.worker.keepalive_source_ips().begin(), record.worker.keepalive_source_ips().end())) {
    ++membership_version_;
  }
  if (!entry.stub || old.worker.grpc_address() != record.worker.grpc_address()) {
    // The relay at that address must prove it is this worker: a registration cannot point control
    // (and the calls it would place there) at another server.
    entry.stub = v1::RelayService::NewStub(grpcutil::CreateChannel(
        record.worker.grpc_address(), options_.tls,
        grpcutil::ExpectedPeer{auth::Role::kWorker, record.worker.worker_id()}));
  }
  if (heard) {
    entry.pending_sessions = entry.pending_ports = 0;
  } else {
    // Nothing new from the worker: keep the load as this replica adjusted it (SessionEnded).
    *record.worker.mutable_load() = old.worker.load();
  }
  entry.record = std::move(record);
}

void WorkerRegistry::StoreOutcome(const absl::Status& status, absl::Time now) {
  // Answers such as NOT_FOUND came from the store: it is reachable.
  const bool failed = absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) || absl::IsInternal(status);
  absl::MutexLock lock(&mu_);
  if (failed) {
    store_failing_ = true;
  } else if (store_failing_) {
    store_failing_ = false;
    store_recovered_at_ = now;
  }
}

absl::Status WorkerRegistry::Refresh(absl::Time now) {
  const absl::Time listed_at = absl::Now();
  auto records = store_->List();
  StoreOutcome(records.status(), now);
  if (!records.ok()) return records.status();
  absl::flat_hash_set<std::string> present;
  absl::MutexLock lock(&mu_);
  for (WorkerRecord& record : *records) {
    present.insert(record.worker.worker_id());
    // The listing was read outside the lock: a registration or heartbeat applied since is newer.
    if (auto it = workers_.find(record.worker.worker_id()); it != workers_.end()) {
      const WorkerRecord& cached = it->second.record;
      const bool same = cached.registration_id == record.registration_id;
      if (same && FromProto(record.worker.last_heartbeat()) < FromProto(cached.worker.last_heartbeat())) continue;
      if (!same && FromProto(record.worker.registered_at()) < FromProto(cached.worker.registered_at())) continue;
    }
    Apply(std::move(record));
  }
  for (auto it = workers_.begin(); it != workers_.end();) {
    auto current = it++;
    // Not listed: forgotten, unless it registered here after the listing was read.
    if (present.contains(current->first) || FromProto(current->second.record.worker.registered_at()) >= listed_at) {
      continue;
    }
    workers_.erase(current);
    ++membership_version_;
  }
  UpdateStateGauges();
  return absl::OkStatus();
}

void WorkerRegistry::MediaRanges(google::protobuf::RepeatedPtrField<v1::RelayMediaRange>* out) const {
  absl::MutexLock lock(&mu_);
  AddMediaRanges(out);
}

bool WorkerRegistry::IsRelayMediaAddress(const std::string& ip, uint32_t port) const {
  auto address = net::IpAddress::Parse(ip);
  if (!address.ok()) return false;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, entry] : workers_) {
    const v1::Worker& worker = entry.record.worker;
    if (worker.state() == v1::WORKER_STATE_LOST || port < worker.port_min() || port > worker.port_max()) continue;
    for (const std::string& text : worker.advertised_ips()) {
      auto own = net::IpAddress::Parse(text);
      if (own.ok() && own->Unmapped() == address->Unmapped()) return true;
    }
  }
  return false;
}

void WorkerRegistry::AddMediaRanges(google::protobuf::RepeatedPtrField<v1::RelayMediaRange>* out) const {
  for (const auto& [id, entry] : workers_) {
    const v1::Worker& other = entry.record.worker;
    if (other.state() == v1::WORKER_STATE_LOST || other.port_max() == 0) continue;
    v1::RelayMediaRange* range = out->Add();
    for (const std::string& ip : other.advertised_ips()) range->add_ips(ip);
    range->set_port_min(other.port_min());
    range->set_port_max(other.port_max());
  }
}

absl::StatusOr<v1::Worker> WorkerRegistry::Drain(const std::string& worker_id) {
  auto record = store_->SetDrainRequested(worker_id, true);
  if (!record.ok()) return record.status();
  absl::MutexLock lock(&mu_);
  v1::Worker worker = record->worker;
  Apply(*std::move(record));
  UpdateStateGauges();
  return worker;
}

absl::StatusOr<v1::Worker> WorkerRegistry::Undrain(const std::string& worker_id) {
  auto record = store_->SetDrainRequested(worker_id, false);
  if (!record.ok()) return record.status();
  absl::MutexLock lock(&mu_);
  v1::Worker worker = record->worker;
  Apply(*std::move(record));
  UpdateStateGauges();
  return worker;
}

std::vector<v1::Worker> WorkerRegistry::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Worker> out;
  out.reserve(workers_.size());
  for (const auto& [id, entry] : workers_) out.push_back(entry.record.worker);
  std::sort(out.begin(), out.end(), [](const v1::Worker& a, const v1::Worker& b) { return a.worker_id() < b.worker_id(); });
  return out;
}

absl::StatusOr<std::vector<v1::Worker>> WorkerRegistry::ListFresh(absl::Time now) {
  if (absl::Status s = Refresh(now); !s.ok()) return s;
  return List();
}

absl::StatusOr<WorkerHandle> WorkerRegistry::Place(uint32_t ports_needed,
                                                   const absl::flat_hash_set<std::string>& exclude) {
  absl::MutexLock lock(&mu_);
  std::vector<PlacementCandidate> candidates;
  std::vector<Entry*> entries;
  candidates.reserve(workers_.size());
  for (auto& [id, entry] : workers_) {
    if (exclude.contains(id)) continue;
    candidates.push_back(
        {id, entry.record.worker.state(), entry.record.worker.load(), entry.pending_sessions, entry.pending_ports});
    entries.push_back(&entry);
  }
  auto chosen = ChooseWorker(candidates, ports_needed);
  if (!chosen.ok()) return chosen.status();
  Entry& entry = *entries[*chosen];
  entry.pending_sessions += 1;
  entry.pending_ports += ports_needed;
  return WorkerHandle{entry.record.worker.worker_id(), entry.record.worker, entry.stub};
}

absl::StatusOr<WorkerHandle> WorkerRegistry::Get(const std::string& worker_id) const {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return absl::NotFoundError(absl::StrCat("worker \"", worker_id, "\" is not registered"));
  if (it->second.record.worker.state() == v1::WORKER_STATE_LOST) {
    return absl::UnavailableError(absl::StrCat("worker \"", worker_id, "\" is lost"));
  }
  return WorkerHandle{worker_id, it->second.record.worker, it->second.stub};
}

bool WorkerRegistry::Responsive(const std::string& worker_id, absl::Time now) const {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  return it != workers_.end() && it->second.record.worker.state() != v1::WORKER_STATE_LOST &&
         now - FromProto(it->second.record.worker.last_heartbeat()) <= 2 * options_.heartbeat_interval;
}

std::string WorkerRegistry::KeepaliveWorkerFor(const std::string& registrar_ip, const std::string& binding_id) const {
  absl::MutexLock lock(&mu_);
  std::string best;
  uint64_t best_score = 0;
  bool best_registrar = false;
  const uint64_t key = StableHash(binding_id);
  for (const auto& [id, entry] : workers_) {
    const v1::Worker& worker = entry.record.worker;
    if (worker.state() != v1::WORKER_STATE_READY || worker.keepalive_source_ips().empty()) continue;
    const bool own_socket = worker.keepalive_mode() == v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET;
    const bool registrar = !own_socket && std::find(worker.keepalive_source_ips().begin(),
                                                    worker.keepalive_source_ips().end(),
                                                    registrar_ip) != worker.keepalive_source_ips().end();
    if (!registrar && !own_socket) continue;
    // A worker that can send from the registrar address beats any own-socket worker (NAT filtering).
    if (best_registrar && !registrar) continue;
    const uint64_t score = Mix64(StableHash(id) ^ key);
    if (best.empty() || (registrar && !best_registrar) || score > best_score || (score == best_score && id < best)) {
      best = id;
      best_score = score;
      best_registrar = registrar;
    }
  }
  return best;
}

uint64_t WorkerRegistry::membership_version() const {
  absl::MutexLock lock(&mu_);
  return membership_version_;
}

void WorkerRegistry::SessionEnded(const std::string& worker_id, uint32_t ports) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  // Reflect freed capacity before the next heartbeat reports it.
  v1::WorkerLoad* load = it->second.record.worker.mutable_load();
  if (load->sessions() > 0) load->set_sessions(load->sessions() - 1);
  load->set_free_ports(std::min(load->total_ports(), load->free_ports() + ports));
}

std::vector<std::string> WorkerRegistry::SweepLost(absl::Time now) {
  const absl::Duration limit = options_.heartbeat_interval * options_.lost_after_missed;
  std::vector<std::string> silent;
  std::vector<std::string> long_lost;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, entry] : workers_) {
      const absl::Time heard = FromProto(entry.record.worker.last_heartbeat());
      if (entry.record.lost) {
        if (now - heard > limit + options_.forget_lost_after) long_lost.push_back(id);
      } else if (!store_failing_ && now - std::max(heard, store_recovered_at_) > limit) {
        silent.push_back(id);
      }
    }
  }
  std::vector<std::string> lost;
  for (const std::string& id : silent) {
    auto marked = store_->MarkLost(id, now, limit);
    if (!marked.ok() || !*marked) continue;
    {
      // Known lost here at once, whatever the refresh below does: ending its sessions relies on it.
      absl::MutexLock lock(&mu_);
      if (auto it = workers_.find(id); it != workers_.end() && !it->second.record.lost) {
        it->second.record.lost = true;
        SetDerivedState(&it->second.record);
        ++membership_version_;
      }
    }
    lost.push_back(id);
    metrics_->workers_lost->Increment();
    log::LogWarning("worker lost").Kv("worker_id", id).Kv("silent_for_seconds", absl::ToDoubleSeconds(limit));
  }
  for (const std::string& id : long_lost) {
    auto forgotten = store_->Forget(id, now, limit + options_.forget_lost_after);
    if (!forgotten.ok() || !*forgotten) continue;
    log::LogInfo("lost worker forgotten").Kv("worker_id", id);
    metrics_->workers_forgotten->Increment();
  }
  (void)Refresh(now);
  return lost;
}

void WorkerRegistry::UpdateStateGauges() {
  std::array<int, v1::WorkerState_ARRAYSIZE> counts{};
  for (const auto& [id, entry] : workers_) counts[entry.record.worker.state()]++;
  for (int s = 0; s < v1::WorkerState_ARRAYSIZE; ++s) {
    if (metrics_->workers[s]) metrics_->workers[s]->Set(counts[s]);
  }
}

}  // namespace latchkey::control
