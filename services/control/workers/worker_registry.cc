#include "services/control/workers/worker_registry.h"

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/hash/stable_hash.h"
#include "common/log/log.h"
#include "common/net/ip_address.h"
#include "common/time/proto_time.h"
#include "common/grpc/channel.h"
#include "services/control/workers/placement.h"

namespace latchkey::control {

WorkerRegistry::WorkerRegistry(WorkerRegistryOptions options, ControlMetrics* metrics)
    : options_(options), metrics_(metrics) {}

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
    if (id == request.worker_id() || entry.worker.state() == v1::WORKER_STATE_LOST) continue;
    if (entry.worker.port_max() < request.port_min() || entry.worker.port_min() > request.port_max()) continue;
    for (const std::string& mine : request.advertised_ips()) {
      for (const std::string& theirs : entry.worker.advertised_ips()) {
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

std::string WorkerRegistry::Register(const v1::RegisterWorkerRequest& request, absl::Time now) {
  absl::BitGen rng;
  std::string registration_id = absl::StrFormat("%016x", absl::Uniform<uint64_t>(rng));
  absl::MutexLock lock(&mu_);
  Entry& entry = workers_[request.worker_id()];
  const bool address_changed = entry.worker.grpc_address() != request.grpc_address() || !entry.stub;
  entry.worker.set_worker_id(request.worker_id());
  entry.worker.set_grpc_address(request.grpc_address());
  entry.worker.mutable_advertised_ips()->CopyFrom(request.advertised_ips());
  entry.worker.mutable_keepalive_source_ips()->CopyFrom(request.keepalive_source_ips());
  entry.worker.set_keepalive_mode(request.keepalive_mode());
  entry.worker.set_port_min(request.port_min());
  entry.worker.set_port_max(request.port_max());
  ++membership_version_;
  *entry.worker.mutable_load() = request.load();
  entry.worker.set_version(request.version());
  entry.worker_draining = request.draining();
  entry.worker.set_state(request.draining() || entry.drain_requested ? v1::WORKER_STATE_DRAINING
                                                                     : v1::WORKER_STATE_READY);
  *entry.worker.mutable_registered_at() = ToProto(now);
  *entry.worker.mutable_last_heartbeat() = ToProto(now);
  entry.registration_id = registration_id;
  entry.last_heartbeat = now;
  entry.pending_sessions = entry.pending_ports = 0;
  if (address_changed) {
    // The relay at that address must prove it is this worker: a registration cannot point control
    // (and the calls it would place there) at another server.
    entry.stub = v1::RelayService::NewStub(grpcutil::CreateChannel(
        request.grpc_address(), options_.tls, grpcutil::ExpectedPeer{auth::Role::kWorker, request.worker_id()}));
  }
  UpdateStateGauges();
  return registration_id;
}

absl::StatusOr<v1::HeartbeatResponse> WorkerRegistry::Heartbeat(const v1::HeartbeatRequest& request,
                                                                absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(request.worker_id());
  if (it == workers_.end() || it->second.registration_id != request.registration_id() ||
      it->second.worker.state() == v1::WORKER_STATE_LOST) {
    // A lost worker must re-register so control re-learns its sessions.
    return absl::NotFoundError(absl::StrCat("worker_id: ", request.worker_id(), " is not registered"));
  }
  Entry& entry = it->second;
  entry.last_heartbeat = now;
  *entry.worker.mutable_last_heartbeat() = ToProto(now);
  *entry.worker.mutable_load() = request.load();
  entry.pending_sessions = entry.pending_ports = 0;
  entry.worker_draining = request.draining();
  const v1::WorkerState state =
      request.draining() || entry.drain_requested ? v1::WORKER_STATE_DRAINING : v1::WORKER_STATE_READY;
  if (state != entry.worker.state()) ++membership_version_;
  entry.worker.set_state(state);
  UpdateStateGauges();
  v1::HeartbeatResponse response;
  response.set_drain(entry.drain_requested);
  AddMediaRanges(response.mutable_relays());
  return response;
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
    const v1::Worker& worker = entry.worker;
    if (worker.state() == v1::WORKER_STATE_LOST || port < worker.port_min() || port > worker.port_max()) continue;
    for (const std::string& text : worker.advertised_ips()) {
      auto own = net::IpAddress::Parse(text);
      if (own.ok() && own->Unmapped() == address->Unmapped()) return true;
    }
  }
  return false;
}

void WorkerRegistry::AddMediaRanges(google::protobuf::RepeatedPtrField<v1::RelayMediaRange>* out) const {
  for (const auto& [id, other] : workers_) {
    if (other.worker.state() == v1::WORKER_STATE_LOST || other.worker.port_max() == 0) continue;
    v1::RelayMediaRange* range = out->Add();
    for (const std::string& ip : other.worker.advertised_ips()) range->add_ips(ip);
    range->set_port_min(other.worker.port_min());
    range->set_port_max(other.worker.port_max());
  }
}

absl::StatusOr<v1::Worker> WorkerRegistry::Drain(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return absl::NotFoundError(absl::StrCat("worker_id: no worker \"", worker_id, "\""));
  it->second.drain_requested = true;
  if (it->second.worker.state() == v1::WORKER_STATE_READY) {
    it->second.worker.set_state(v1::WORKER_STATE_DRAINING);
    ++membership_version_;
  }
  UpdateStateGauges();
  return it->second.worker;
}

absl::StatusOr<v1::Worker> WorkerRegistry::Undrain(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return absl::NotFoundError(absl::StrCat("worker_id: no worker \"", worker_id, "\""));
  Entry& entry = it->second;
  entry.drain_requested = false;
  if (entry.worker.state() == v1::WORKER_STATE_DRAINING && !entry.worker_draining) {
    entry.worker.set_state(v1::WORKER_STATE_READY);
    ++membership_version_;
  }
  UpdateStateGauges();
  return entry.worker;
}

std::vector<v1::Worker> WorkerRegistry::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Worker> out;
  out.reserve(workers_.size());
  for (const auto& [id, entry] : workers_) out.push_back(entry.worker);
  std::sort(out.begin(), out.end(), [](const v1::Worker& a, const v1::Worker& b) { return a.worker_id() < b.worker_id(); });
  return out;
}

absl::StatusOr<WorkerHandle> WorkerRegistry::Place(uint32_t ports_needed,
                                                   const absl::flat_hash_set<std::string>& exclude) {
  absl::MutexLock lock(&mu_);
  std::vector<PlacementCandidate> candidates;
  std::vector<Entry*> entries;
  candidates.reserve(workers_.size());
  for (auto& [id, entry] : workers_) {
    if (exclude.contains(id)) continue;
    candidates.push_back({id, entry.worker.state(), entry.worker.load(), entry.pending_sessions, entry.pending_ports});
    entries.push_back(&entry);
  }
  auto chosen = ChooseWorker(candidates, ports_needed);
  if (!chosen.ok()) return chosen.status();
  Entry& entry = *entries[*chosen];
  entry.pending_sessions += 1;
  entry.pending_ports += ports_needed;
  return WorkerHandle{entry.worker.worker_id(), entry.worker, entry.stub};
}

absl::StatusOr<WorkerHandle> WorkerRegistry::Get(const std::string& worker_id) const {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return absl::NotFoundError(absl::StrCat("worker \"", worker_id, "\" is not registered"));
  if (it->second.worker.state() == v1::WORKER_STATE_LOST) {
    return absl::UnavailableError(absl::StrCat("worker \"", worker_id, "\" is lost"));
  }
  return WorkerHandle{worker_id, it->second.worker, it->second.stub};
}

bool WorkerRegistry::Responsive(const std::string& worker_id, absl::Time now) const {
  absl::MutexLock lock(&mu_);
  auto it = workers_.find(worker_id);
  return it != workers_.end() && it->second.worker.state() != v1::WORKER_STATE_LOST &&
         now - it->second.last_heartbeat <= 2 * options_.heartbeat_interval;
}

std::string WorkerRegistry::KeepaliveWorkerFor(const std::string& registrar_ip, const std::string& binding_id) const {
  absl::MutexLock lock(&mu_);
  std::string best;
  uint64_t best_score = 0;
  bool best_registrar = false;
  const uint64_t key = StableHash(binding_id);
  for (const auto& [id, entry] : workers_) {
    if (entry.worker.state() != v1::WORKER_STATE_READY || entry.worker.keepalive_source_ips().empty()) continue;
    const bool own_socket = entry.worker.keepalive_mode() == v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET;
    const bool registrar = !own_socket && std::find(entry.worker.keepalive_source_ips().begin(),
                                                    entry.worker.keepalive_source_ips().end(),
                                                    registrar_ip) != entry.worker.keepalive_source_ips().end();
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
  v1::WorkerLoad* load = it->second.worker.mutable_load();
  if (load->sessions() > 0) load->set_sessions(load->sessions() - 1);
  load->set_free_ports(std::min(load->total_ports(), load->free_ports() + ports));
}

std::vector<std::string> WorkerRegistry::SweepLost(absl::Time now) {
  const absl::Duration limit = options_.heartbeat_interval * options_.lost_after_missed;
  std::vector<std::string> lost;
  absl::MutexLock lock(&mu_);
  bool forgot = false;
  for (auto it = workers_.begin(); it != workers_.end();) {
    auto current = it++;
    if (current->second.worker.state() == v1::WORKER_STATE_LOST &&
        now - current->second.last_heartbeat > limit + options_.forget_lost_after) {
      log::LogInfo("lost worker forgotten").Kv("worker_id", current->first);
      metrics_->workers_forgotten->Increment();
      workers_.erase(current);
      ++membership_version_;
      forgot = true;
    }
  }
  for (auto& [id, entry] : workers_) {
    if (entry.worker.state() == v1::WORKER_STATE_LOST || now - entry.last_heartbeat <= limit) continue;
    entry.worker.set_state(v1::WORKER_STATE_LOST);
    lost.push_back(id);
    metrics_->workers_lost->Increment();
    log::LogWarning("worker lost")
        .Kv("worker_id", id)
        .Kv("silent_seconds", absl::ToDoubleSeconds(now - entry.last_heartbeat));
  }
  if (!lost.empty()) ++membership_version_;
  if (!lost.empty() || forgot) UpdateStateGauges();
  return lost;
}

void WorkerRegistry::UpdateStateGauges() {
  std::array<int, v1::WorkerState_ARRAYSIZE> counts{};
  for (const auto& [id, entry] : workers_) counts[entry.worker.state()]++;
  for (int s = 0; s < v1::WorkerState_ARRAYSIZE; ++s) {
    if (metrics_->workers[s]) metrics_->workers[s]->Set(counts[s]);
  }
}

}  // namespace latchkey::control
