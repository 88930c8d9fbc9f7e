#pragma once
// latchkey.v1.WorkerRegistryService: relay workers register, heartbeat and report media events.
#include <functional>

#include "common/grpc/auth.h"
#include "latchkey/v1/worker.grpc.pb.h"
#include "services/control/bindings/binding_manager.h"
#include "services/control/sessions/worker_sessions.h"
#include "services/control/workers/worker_registry.h"

namespace latchkey::control {

class WorkerRegistryServiceImpl final : public v1::WorkerRegistryService::Service {
 public:
  // Every call acts for the worker its caller's certificate names: another worker id is
  // PERMISSION_DENIED (counted by `gate`).
  WorkerRegistryServiceImpl(WorkerRegistry* workers, WorkerSessions* sessions, BindingManager* bindings,
                            std::function<absl::Time()> clock, grpcutil::Gate* gate);

  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest*, v1::RegisterWorkerResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*, v1::HeartbeatResponse*) override;
  grpc::Status ReportEvents(grpc::ServerContext*, const v1::ReportEventsRequest*, v1::ReportEventsResponse*) override;

 private:
  WorkerRegistry* workers_;
  WorkerSessions* sessions_;
  BindingManager* bindings_;
  // Admitted when the caller may call `method` and act for `worker_id`; else the counted refusal.
  grpcutil::Admission AdmitWorker(grpc::ServerContext* context, absl::string_view method, const std::string& worker_id);

  std::function<absl::Time()> clock_;
  grpcutil::Gate* gate_;
};

}  // namespace latchkey::control
