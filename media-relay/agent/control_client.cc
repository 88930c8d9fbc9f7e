#include "media-relay/agent/control_client.h"

#include <algorithm>
#include <utility>

#include "absl/random/random.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/time/proto_time.h"
#include "common/grpc/channel.h"

namespace latchkey::relay {
namespace {

constexpr absl::Duration kCallTimeout = absl::Seconds(2);
constexpr absl::Duration kMinBackoff = absl::Milliseconds(100);
constexpr absl::Duration kMaxBackoff = absl::Seconds(5);
constexpr size_t kMaxQueuedEvents = 10000;
constexpr size_t kMaxQueuedContests = 1000;
constexpr int kMaxContestsPerSecond = 20;
constexpr int kMaxEventsPerReport = 500;

void SetDeadline(grpc::ClientContext* context) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + kCallTimeout));
}

}  // namespace

ControlClient::ControlClient(ControlClientOptions options, prometheus::Registry& registry)
    : options_(std::move(options)),
      stub_(v1::WorkerRegistryService::NewStub(
          grpcutil::CreateChannel(options_.control_address, options_.tls, {auth::Role::kControl, ""}))) {
  advertised_ips_ = options_.advertised_ips;
  auto& registrations = prometheus::BuildCounter()
                            .Name("latchkey_relay_registrations_total")
                            .Help("Registrations with control, by result")
                            .Register(registry);
  registrations_ = &registrations.Add({{"result", "ok"}});
  registration_failures_ = &registrations.Add({{"result", "failed"}});
  heartbeat_failures_ = &prometheus::BuildCounter()
                             .Name("latchkey_relay_heartbeat_failures_total")
                             .Help("Heartbeats control did not answer or rejected")
                             .Register(registry)
                             .Add({});
  auto& events = prometheus::BuildCounter()
                     .Name("latchkey_relay_events_total")
                     .Help("Latch, re-latch and media-timeout events, by whether control got them")
                     .Register(registry);
  events_reported_ = &events.Add({{"result", "reported"}});
  events_dropped_ = &events.Add({{"result", "dropped"}});
}

ControlClient::~ControlClient() { Stop(); }

void ControlClient::Start(ControlClientWiring wiring) {
  wiring_ = std::move(wiring);
  load_meter_ = std::make_unique<LoadMeter>(wiring_.engine);
  thread_ = std::thread([this] { Run(); });
}

void ControlClient::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void ControlClient::SetAdvertisedIps(std::vector<std::string> ips) {
  absl::MutexLock lock(&mu_);
  advertised_ips_ = std::move(ips);
  registered_ = false;
}

bool ControlClient::registered() const {
  absl::MutexLock lock(&mu_);
  return registered_;
}

bool ControlClient::Sleep(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
  return !stopping_;
}

void ControlClient::OnEngineEvent(EngineEvent event) {
  absl::MutexLock lock(&mu_);
  if (event.type == v1::SESSION_EVENT_TYPE_LATCH_CONTESTED) {
    // Reports of an attack are worth less than the events that end calls: at most
    // kMaxContestsPerSecond per worker (its packet threads each cap theirs too), and never more
    // than kMaxQueuedContests waiting while control is away.
    const absl::Time now = absl::Now();
    if (now - contest_window_start_ >= absl::Seconds(1)) {
      contest_window_start_ = now;
      contests_in_window_ = 0;
    }
    if (++contests_in_window_ > kMaxContestsPerSecond || events_.size() >= kMaxQueuedContests) {
      events_dropped_->Increment();
      return;
    }
  }
  if (events_.size() >= kMaxQueuedEvents) {
    events_.pop_front();
    events_dropped_->Increment();
  }
  events_.push_back(std::move(event));
}

bool ControlClient::WaitForWork(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || heartbeat_now_ || (registered_ && (!events_.empty() || !keepalive_events_.empty()));
  };
  mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
  return !stopping_;
}

void ControlClient::OnKeepaliveEvents(std::vector<KeepaliveEventOut> events) {
  absl::MutexLock lock(&mu_);
  for (KeepaliveEventOut& e : events) {
    if (keepalive_events_.size() >= kMaxQueuedEvents) {
      keepalive_events_.pop_front();
      events_dropped_->Increment();
    }
    keepalive_events_.push_back(std::move(e));
  }
}

bool ControlClient::ReportQueuedEvents() {
  std::vector<EngineEvent> batch;
  std::vector<KeepaliveEventOut> keepalive_batch;
  {
    absl::MutexLock lock(&mu_);
    const size_t n = std::min<size_t>(events_.size(), kMaxEventsPerReport);
    batch.assign(std::make_move_iterator(events_.begin()), std::make_move_iterator(events_.begin() + n));
    events_.erase(events_.begin(), events_.begin() + n);
    const size_t k = std::min<size_t>(keepalive_events_.size(), kMaxEventsPerReport);
    keepalive_batch.assign(std::make_move_iterator(keepalive_events_.begin()),
                           std::make_move_iterator(keepalive_events_.begin() + k));
    keepalive_events_.erase(keepalive_events_.begin(), keepalive_events_.begin() + k);
  }
  if (batch.empty() && keepalive_batch.empty()) return true;
  v1::ReportEventsRequest request;
  request.set_worker_id(options_.worker_id);
  for (const EngineEvent& e : batch) {
    v1::WorkerEvent* event = request.add_events();
    event->set_session_id(e.session_id);
    event->set_side(e.side);
    event->set_type(e.type);
    if (e.type == v1::SESSION_EVENT_TYPE_LATCHED || e.type == v1::SESSION_EVENT_TYPE_RELATCHED ||
        e.type == v1::SESSION_EVENT_TYPE_LATCH_CONTESTED) {
      event->mutable_source()->set_ip(e.source.ip.ToString());
      event->mutable_source()->set_port(e.source.port);
    }
    *event->mutable_time() = ToProto(e.time);
  }
  for (const KeepaliveEventOut& e : keepalive_batch) {
    v1::KeepaliveEvent* event = request.add_keepalive_events();
    event->set_binding_id(e.binding_id);
    event->set_reachability(e.reachability);
    event->set_status_code(e.status_code);
    *event->mutable_rtt() = ToProto(e.rtt);
    *event->mutable_time() = ToProto(e.time);
  }
  v1::ReportEventsResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status status = stub_->ReportEvents(&context, request, &response);
  if (status.ok()) {
    events_reported_->Increment(static_cast<double>(batch.size() + keepalive_batch.size()));
    return true;
  }
  // Put them back for the next try (control restarting); the queue bound still applies.
  absl::MutexLock lock(&mu_);
  events_.insert(events_.begin(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
  keepalive_events_.insert(keepalive_events_.begin(), std::make_move_iterator(keepalive_batch.begin()),
                           std::make_move_iterator(keepalive_batch.end()));
  while (keepalive_events_.size() > kMaxQueuedEvents) {
    keepalive_events_.pop_front();
    events_dropped_->Increment();
  }
  while (events_.size() > kMaxQueuedEvents) {
    events_.pop_front();
    events_dropped_->Increment();
  }
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) registered_ = false;
  return false;
}

v1::WorkerLoad ControlClient::CurrentLoad() {
  const absl::Time now = absl::Now();
  v1::WorkerLoad load = wiring_.sessions->Load(now);
  const LoadMeter::Sample sample = load_meter_->Take(now);
  load.set_packets_per_second(sample.packets_per_second);
  load.set_cpu(sample.cpu);
  if (wiring_.keepalives) load.set_keepalive_targets(static_cast<uint32_t>(wiring_.keepalives->size()));
  if (wiring_.engine) {
    load.set_fast_path(wiring_.engine->fast_path_mode());
    load.set_fast_path_flows(static_cast<uint32_t>(wiring_.engine->kernel_flows()));
  }
  return load;
}

bool ControlClient::RegisterOnce() {
  v1::RegisterWorkerRequest request;
  request.set_worker_id(options_.worker_id);
  request.set_grpc_address(wiring_.grpc_address);
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& ip : advertised_ips_) request.add_advertised_ips(ip);
  }
  request.set_version(options_.version);
  request.set_keepalive_mode(wiring_.keepalive_mode);
  for (const std::string& ip : wiring_.keepalive_source_ips) request.add_keepalive_source_ips(ip);
  request.set_port_min(options_.port_min);
  request.set_port_max(options_.port_max);
  *request.mutable_load() = CurrentLoad();
  request.set_draining(wiring_.sessions->draining());
  for (v1::Session& session : wiring_.sessions->Snapshot()) *request.add_sessions() = std::move(session);

  v1::RegisterWorkerResponse response;
  grpc::ClientContext context;
  SetDeadline(&context);
  grpc::Status status = stub_->RegisterWorker(&context, request, &response);
  if (!status.ok()) {
    registration_failures_->Increment();
    log::LogWarning("registration with control failed")
        .Kv("control", options_.control_address)
        .Kv("code", static_cast<int>(status.error_code()))
        .Kv("error", status.error_message());
    return false;
  }
  registrations_->Increment();
  // Loop protection from the registration on, not only from the first heartbeat.
  ApplyRelayRanges(response.relays());
  absl::MutexLock lock(&mu_);
  registered_ = true;
  registration_id_ = response.registration_id();
  heartbeat_interval_ = std::clamp(FromProto(response.heartbeat_interval()), absl::Milliseconds(100), absl::Seconds(30));
  log::LogInfo("registered with control")
      .Kv("control", options_.control_address)
      .Kv("worker_id", options_.worker_id)
      .Kv("sessions", request.sessions_size())
      .Kv("heartbeat_ms", absl::ToInt64Milliseconds(heartbeat_interval_));
  return true;
}

void ControlClient::ApplyRelayRanges(const google::protobuf::RepeatedPtrField<v1::RelayMediaRange>& relays) {
  if (!options_.on_relay_ranges) return;
  std::string seen;
  for (const v1::RelayMediaRange& range : relays) seen += range.SerializeAsString();
  if (seen == relay_ranges_seen_) return;
  relay_ranges_seen_ = std::move(seen);
  options_.on_relay_ranges(relays);
}

void ControlClient::Run() {
  absl::BitGen rng;
  absl::Duration backoff = kMinBackoff;
  for (;;) {
    bool is_registered;
    absl::Duration interval;
    std::string registration_id;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      is_registered = registered_;
      interval = heartbeat_interval_;
      registration_id = registration_id_;
    }
    if (!is_registered) {
      if (RegisterOnce()) {
        backoff = kMinBackoff;
        continue;
      }
      // Jittered exponential backoff so a fleet does not stampede a restarting control.
      if (!Sleep(backoff * absl::Uniform(rng, 0.5, 1.5))) return;
      backoff = std::min(backoff * 2, kMaxBackoff);
      continue;
    }
    // Events go out as soon as they happen; heartbeats on their interval.
    const absl::Time heartbeat_due = absl::Now() + interval;
    while (absl::Now() < heartbeat_due) {
      if (!WaitForWork(heartbeat_due)) return;
      if (TakeHeartbeatNow()) break;
      if (ReportQueuedEvents()) continue;
      // Control unreachable: keep the events, retry with the next heartbeat rather than spin.
      if (!registered() || !Sleep(heartbeat_due - absl::Now())) break;
    }
    if (!registered()) continue;

    v1::HeartbeatRequest request;
    request.set_worker_id(options_.worker_id);
    request.set_registration_id(registration_id);
    *request.mutable_load() = CurrentLoad();
    request.set_draining(wiring_.sessions->draining());
    v1::HeartbeatResponse response;
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status status = stub_->Heartbeat(&context, request, &response);
    if (status.ok()) {
      ApplyRelayRanges(response.relays());
      if (response.drain() && !wiring_.sessions->draining()) {
        wiring_.sessions->SetDraining(true);
        drained_by_control_ = true;
        log::LogInfo("control asked to drain").Kv("sessions", wiring_.sessions->size());
      } else if (!response.drain() && drained_by_control_ && !shutting_down_.load()) {
        // An operator's undrain. A drain of our own (SIGTERM) is never withdrawn by control.
        drained_by_control_ = false;
        wiring_.sessions->SetDraining(false);
        log::LogInfo("control withdrew the drain").Kv("sessions", wiring_.sessions->size());
      }
      continue;
    }
    heartbeat_failures_->Increment();
    if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
      // Control restarted or declared us lost: announce everything we hold again.
      log::LogWarning("control does not know this worker; registering again").Kv("worker_id", options_.worker_id);
      absl::MutexLock lock(&mu_);
      registered_ = false;
    }
  }
}

void ControlClient::DrainForShutdown() {
  shutting_down_.store(true);
  if (wiring_.sessions) wiring_.sessions->SetDraining(true);
  // Tell control now, not within the next interval, so it stops placing calls here at once.
  absl::MutexLock lock(&mu_);
  heartbeat_now_ = true;
}

bool ControlClient::TakeHeartbeatNow() {
  absl::MutexLock lock(&mu_);
  return std::exchange(heartbeat_now_, false);
}

}  // namespace latchkey::relay
