#include "services/control/sessions/relay_sessions.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/status.h"
#include "common/log/log.h"

namespace latchkey::control {
namespace {

constexpr int kMaxPlacementAttempts = 3;

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

absl::Status WorkerError(const std::string& worker_id, const grpc::Status& status) {
  absl::Status s = grpcutil::FromGrpc(status);
  // The worker's own refusals (full, draining, bad request) keep their code; transport failures mean
  // the worker is unavailable.
  if (s.code() == absl::StatusCode::kDeadlineExceeded || s.code() == absl::StatusCode::kUnknown ||
      s.code() == absl::StatusCode::kInternal || s.code() == absl::StatusCode::kCancelled) {
    return absl::UnavailableError(absl::StrCat("relay worker ", worker_id, ": ", s.message()));
  }
  return absl::Status(s.code(), absl::StrCat("relay worker ", worker_id, ": ", s.message()));
}

}  // namespace

absl::Status WorkerRelaySessions::Create(v1::Session& session, uint32_t streams, uint32_t callee_family) {
  absl::flat_hash_set<std::string> failed;
  absl::Status last_error;
  for (int attempt = 0; attempt < kMaxPlacementAttempts; ++attempt) {
    auto worker = workers_->Place(streams * kPortsPerStream, failed);
    if (!worker.ok()) {
      if (!failed.empty()) break;  // report the worker failure, not "no worker left"
      (absl::IsUnavailable(worker.status()) ? metrics_->placement_no_worker : metrics_->placement_no_capacity)->Increment();
      return worker.status();
    }
    session.set_worker_id(worker->worker_id);
    v1::CreateRelaySessionRequest create;
    *create.mutable_session() = session;
    create.set_stream_count(streams);
    create.set_callee_family(callee_family);
    create.mutable_session()->set_version(1);  // what the store's first write makes it
    v1::CreateRelaySessionResponse created;
    grpc::ClientContext context;
    SetDeadline(&context, call_timeout_);
    grpc::Status status = worker->stub->CreateRelaySession(&context, create, &created);
    if (status.ok()) {
      *session.mutable_caller()->mutable_relay() = created.caller();
      *session.mutable_callee()->mutable_relay() = created.callee();
      return absl::OkStatus();
    }
    metrics_->placement_worker_error->Increment();
    last_error = WorkerError(worker->worker_id, status);
    log::LogWarning("relay worker refused a session")
        .Kv("worker_id", worker->worker_id)
        .Kv("call_id", session.call_id())
        .Kv("error", last_error.ToString());
    failed.insert(worker->worker_id);
    session.clear_worker_id();
  }
  return last_error.ok() ? absl::UnavailableError("no relay worker could take the call") : last_error;
}

absl::Status WorkerRelaySessions::Update(v1::Session& session, uint32_t streams, uint64_t version) {
  auto worker = workers_->Get(session.worker_id());
  if (!worker.ok()) {
    // The session exists; its relay is not reachable right now (lost, or not yet re-registered).
    return absl::UnavailableError(absl::StrCat("relay worker ", session.worker_id(), ": ", worker.status().message()));
  }
  v1::UpdateRelaySessionRequest request;
  *request.mutable_session() = session;
  request.mutable_session()->set_version(version);
  request.set_stream_count(streams);
  v1::UpdateRelaySessionResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, call_timeout_);
  grpc::Status status = worker->stub->UpdateRelaySession(&context, request, &response);
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
    return absl::UnavailableError(absl::StrCat("relay worker ", worker->worker_id, " no longer has the session"));
  }
  if (!status.ok()) return WorkerError(worker->worker_id, status);
  *session.mutable_caller()->mutable_relay() = response.caller();
  *session.mutable_callee()->mutable_relay() = response.callee();
  return absl::OkStatus();
}

bool WorkerRelaySessions::Delete(const std::string& worker_id, const std::string& session_id,
                                 v1::SessionEventType reason, uint32_t ports, v1::DeleteRelaySessionResponse* response) {
  auto worker = workers_->Get(worker_id);
  // A silent worker is not waited on: the sweeper must not stall behind it.
  if (!worker.ok() || !workers_->Responsive(worker_id, clock_())) return false;
  v1::DeleteRelaySessionRequest request;
  request.set_session_id(session_id);
  request.set_reason(reason);
  grpc::ClientContext context;
  SetDeadline(&context, call_timeout_);
  grpc::Status status = worker->stub->DeleteRelaySession(&context, request, response);
  if (!status.ok() && status.error_code() != grpc::StatusCode::NOT_FOUND) {
    // It keeps the ports until it reports the session's media timeout; control then deletes it again.
    log::LogWarning("relay worker did not delete a session")
        .Kv("session_id", session_id)
        .Kv("worker_id", worker_id)
        .Kv("error", status.error_message());
  }
  if (status.ok() && ports > 0) workers_->SessionEnded(worker_id, ports);
  return status.ok();
}

bool WorkerRelaySessions::Stats(const v1::Session& session, v1::GetRelaySessionResponse* response) {
  auto worker = workers_->Get(session.worker_id());
  if (!worker.ok()) return false;
  v1::GetRelaySessionRequest request;
  request.set_session_id(session.session_id());
  grpc::ClientContext context;
  SetDeadline(&context, std::min(call_timeout_, absl::Milliseconds(500)));
  return worker->stub->GetRelaySession(&context, request, response).ok();
}

}  // namespace latchkey::control
