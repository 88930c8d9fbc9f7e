#include "media-relay/agent/control_client.h"

#include <algorithm>

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

void SetDeadline(grpc::ClientContext* context) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + kCallTimeout));
}

}  // namespace

ControlClient::ControlClient(ControlClientOptions options, SessionTable* sessions, prometheus::Registry& registry)
    : options_(std::move(options)),
      sessions_(sessions),
      stub_(v1::WorkerRegistryService::NewStub(
          grpcutil::CreateChannel(options_.control_address))) {
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
}

ControlClient::~ControlClient() { Stop(); }

void ControlClient::Start() { thread_ = std::thread([this] { Run(); }); }

void ControlClient::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
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

bool ControlClient::RegisterOnce() {
  v1::RegisterWorkerRequest request;
  request.set_worker_id(options_.worker_id);
  request.set_grpc_address(options_.grpc_address);
  for (const std::string& ip : options_.advertised_ips) request.add_advertised_ips(ip);
  request.set_version(options_.version);
  *request.mutable_load() = sessions_->Load(absl::Now());
  request.set_draining(sessions_->draining());
  for (v1::Session& session : sessions_->Snapshot()) *request.add_sessions() = std::move(session);

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
    if (!Sleep(interval)) return;

    v1::HeartbeatRequest request;
    request.set_worker_id(options_.worker_id);
    request.set_registration_id(registration_id);
    *request.mutable_load() = sessions_->Load(absl::Now());
    request.set_draining(sessions_->draining());
    v1::HeartbeatResponse response;
    grpc::ClientContext context;
    SetDeadline(&context);
    grpc::Status status = stub_->Heartbeat(&context, request, &response);
    if (status.ok()) {
      if (response.drain() && !sessions_->draining()) {
        sessions_->SetDraining(true);
        log::LogInfo("control asked to drain").Kv("sessions", sessions_->size());
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

}  // namespace latchkey::relay
