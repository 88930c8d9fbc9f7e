#pragma once
// latchkey.v1.WorkerRegistryService: relay workers register, heartbeat and report media events.
#include <functional>

#include "latchkey/v1/worker.grpc.pb.h"
#include "services/control/bindings/binding_manager.h"
#include "services/control/sessions/session_manager.h"
#include "services/control/workers/worker_registry.h"

namespace latchkey::control {

class WorkerRegistryServiceImpl final : public v1::WorkerRegistryService::Service {
 public:
  WorkerRegistryServiceImpl(WorkerRegistry* workers, SessionManager* sessions, BindingManager* bindings,
                            std::function<absl::Time()> clock);

  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest*, v1::RegisterWorkerResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*, v1::HeartbeatResponse*) override;
  grpc::Status ReportEvents(grpc::ServerContext*, const v1::ReportEventsRequest*, v1::ReportEventsResponse*) override;

 private:
  WorkerRegistry* workers_;
  SessionManager* sessions_;
  BindingManager* bindings_;
  std::function<absl::Time()> clock_;
};

}  // namespace latchkey::control
