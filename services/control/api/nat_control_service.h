#pragma once
// latchkey.v1.NatControlService: validation and state live in the managers; this maps them to gRPC.
#include <atomic>

#include "common/grpc/auth.h"
#include "latchkey/v1/nat_control.grpc.pb.h"
#include "services/control/events/event_feed.h"
#include "services/control/events/watch_limits.h"
#include "services/control/bindings/binding_manager.h"
#include "services/control/sessions/session_manager.h"
#include "services/control/workers/worker_registry.h"

namespace latchkey::control {

// Binding and worker RPCs only take short locks: they run as callbacks on gRPC's own threads, which
// avoids a thread hand-off per call. Session RPCs call relay workers and stay on the sync thread pool.
using NatControlServiceBase = v1::NatControlService::WithCallbackMethod_AllocateBinding<
    v1::NatControlService::WithCallbackMethod_GetBinding<v1::NatControlService::WithCallbackMethod_ListBindings<
        v1::NatControlService::WithCallbackMethod_ReleaseBinding<v1::NatControlService::WithCallbackMethod_ListWorkers<
            v1::NatControlService::WithCallbackMethod_DrainWorker<
                v1::NatControlService::WithCallbackMethod_UndrainWorker<v1::NatControlService::Service>>>>>>>;

class NatControlServiceImpl final : public NatControlServiceBase {
 public:
  // Every handler first admits its caller through `gate` and then acts for it: a PBX reaches only
  // its own bindings and sessions.
  NatControlServiceImpl(BindingManager* bindings, SessionManager* sessions, WorkerRegistry* workers,
                        EventFeed<BindingLogEntry>* binding_events, EventFeed<SessionEvent>* session_events,
                        WatchLimits* watch_limits, ControlMetrics* metrics, grpcutil::Gate* gate);

  grpc::ServerUnaryReactor* AllocateBinding(grpc::CallbackServerContext*, const v1::AllocateBindingRequest*,
                                            v1::AllocateBindingResponse*) override;
  grpc::ServerUnaryReactor* GetBinding(grpc::CallbackServerContext*, const v1::GetBindingRequest*,
                                       v1::GetBindingResponse*) override;
  grpc::ServerUnaryReactor* ListBindings(grpc::CallbackServerContext*, const v1::ListBindingsRequest*,
                                         v1::ListBindingsResponse*) override;
  grpc::ServerUnaryReactor* ReleaseBinding(grpc::CallbackServerContext*, const v1::ReleaseBindingRequest*,
                                           v1::ReleaseBindingResponse*) override;
  grpc::Status WatchBindings(grpc::ServerContext*, const v1::WatchBindingsRequest*,
                             grpc::ServerWriter<v1::WatchBindingsResponse>*) override;

  grpc::Status AllocateSession(grpc::ServerContext*, const v1::AllocateSessionRequest*,
                               v1::AllocateSessionResponse*) override;
  grpc::Status AnswerSession(grpc::ServerContext*, const v1::AnswerSessionRequest*,
                             v1::AnswerSessionResponse*) override;
  grpc::Status UpdateSession(grpc::ServerContext*, const v1::UpdateSessionRequest*,
                             v1::UpdateSessionResponse*) override;
  grpc::Status GetSession(grpc::ServerContext*, const v1::GetSessionRequest*, v1::GetSessionResponse*) override;
  grpc::Status ListSessions(grpc::ServerContext*, const v1::ListSessionsRequest*, v1::ListSessionsResponse*) override;
  grpc::Status ReleaseSession(grpc::ServerContext*, const v1::ReleaseSessionRequest*,
                              v1::ReleaseSessionResponse*) override;
  grpc::Status WatchSessions(grpc::ServerContext*, const v1::WatchSessionsRequest*,
                             grpc::ServerWriter<v1::WatchSessionsResponse>*) override;

  grpc::ServerUnaryReactor* ListWorkers(grpc::CallbackServerContext*, const v1::ListWorkersRequest*,
                                        v1::ListWorkersResponse*) override;
  grpc::ServerUnaryReactor* DrainWorker(grpc::CallbackServerContext*, const v1::DrainWorkerRequest*,
                                        v1::DrainWorkerResponse*) override;
  grpc::ServerUnaryReactor* UndrainWorker(grpc::CallbackServerContext*, const v1::UndrainWorkerRequest*,
                                          v1::UndrainWorkerResponse*) override;

 private:
  BindingManager* bindings_;
  SessionManager* sessions_;
  WorkerRegistry* workers_;
  EventFeed<BindingLogEntry>* binding_events_;
  EventFeed<SessionEvent>* session_events_;
  WatchLimits* watch_limits_;
  ControlMetrics* metrics_;
  grpcutil::Gate* gate_;
};

}  // namespace latchkey::control
