#include "services/control/api/nat_control_service.h"

#include <atomic>

#include "common/grpc/status.h"
#include "common/grpc/unary.h"
#include "common/validation.h"

namespace latchkey::control {
namespace {

using grpcutil::Finish;
using grpcutil::Reply;
using grpcutil::ToGrpc;

// Streams events matching `filter` until the client goes away or the server shuts down. The poll
// interval bounds how late a cancelled stream notices. Within the open-stream limits only; a watcher
// that falls too far behind is cut off with RESOURCE_EXHAUSTED.
template <typename Event, typename Writer>
grpc::Status Stream(grpc::ServerContext* context, const grpcutil::Caller& caller, EventHub<Event>* hub,
                    typename EventHub<Event>::Filter filter, Writer* writer, WatchLimits* limits,
                    ControlMetrics* metrics) {
  auto slot = limits->Acquire(caller.ToString());
  if (!slot.ok()) {
    metrics->watch_streams_limited->Increment();
    return ToGrpc(slot.status());
  }
  auto subscription = hub->Subscribe(std::move(filter));
  // A client that stops reading blocks Write (flow control) while its queue overflows: cancelling
  // the call is the only way to free this thread. A write in flight is the sign; a watcher that
  // is merely slow is between writes and gets RESOURCE_EXHAUSTED below.
  std::atomic<bool> writing{false};
  subscription->SetOnCutOff([context, &writing] {
    if (writing.load()) context->TryCancel();
  });
  // Tell the client the stream is live before the first event, so it can act without racing it.
  writer->SendInitialMetadata();
  while (!context->IsCancelled() && !subscription->closed()) {
    std::optional<Event> event = subscription->Next(absl::Milliseconds(250));
    if (!event) continue;
    writing.store(true);
    const bool written = writer->Write(*event);
    writing.store(false);
    if (!written) break;
  }
  // After this no publisher can reach the cut-off callback (Publish holds the hub's lock).
  hub->Unsubscribe(subscription);
  if (subscription->overflowed()) {
    metrics->watch_streams_slow->Increment();
    return ToGrpc(absl::ResourceExhaustedError("watch: the stream fell too far behind and was cut off; read faster "
                                               "or filter, then watch again and re-list"));
  }
  return grpc::Status::OK;
}

}  // namespace

NatControlServiceImpl::NatControlServiceImpl(BindingManager* bindings, SessionManager* sessions,
                                             WorkerRegistry* workers, EventHub<BindingEvent>* binding_events,
                                             EventHub<SessionEvent>* session_events, WatchLimits* watch_limits,
                                             ControlMetrics* metrics, grpcutil::Gate* gate)
    : bindings_(bindings),
      sessions_(sessions),
      workers_(workers),
      binding_events_(binding_events),
      session_events_(session_events),
      watch_limits_(watch_limits),
      metrics_(metrics),
      gate_(gate) {}

grpc::ServerUnaryReactor* NatControlServiceImpl::AllocateBinding(grpc::CallbackServerContext* context,
                                                                 const v1::AllocateBindingRequest* request,
                                                                 v1::AllocateBindingResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/AllocateBinding");
  if (!in.ok()) return Finish(context, in.status);
  // Finished from wherever the store answers (a Redis store: its loop thread), so no gRPC thread
  // waits on the store's write, the hot path of every REGISTER. (An un-REGISTER, and the other
  // binding and session RPCs, still wait on their store calls.)
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  bindings_->AllocateAsync(*request, in.caller, [reactor, response](absl::StatusOr<v1::AllocateBindingResponse> result) {
    reactor->Finish(Reply(std::move(result), response));
  });
  return reactor;
}

grpc::ServerUnaryReactor* NatControlServiceImpl::GetBinding(grpc::CallbackServerContext* context,
                                                            const v1::GetBindingRequest* request,
                                                            v1::GetBindingResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/GetBinding");
  if (!in.ok()) return Finish(context, in.status);
  return Finish(context, Reply(bindings_->Get(request->binding_id(), in.caller), response->mutable_binding()));
}

grpc::ServerUnaryReactor* NatControlServiceImpl::ListBindings(grpc::CallbackServerContext* context,
                                                              const v1::ListBindingsRequest* request,
                                                              v1::ListBindingsResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/ListBindings");
  if (!in.ok()) return Finish(context, in.status);
  return Finish(context, Reply(bindings_->List(*request, in.caller), response));
}

grpc::ServerUnaryReactor* NatControlServiceImpl::ReleaseBinding(grpc::CallbackServerContext* context,
                                                                const v1::ReleaseBindingRequest* request,
                                                                v1::ReleaseBindingResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/ReleaseBinding");
  if (!in.ok()) return Finish(context, in.status);
  return Finish(context, Reply(bindings_->Release(request->binding_id(), in.caller), response->mutable_binding()));
}

grpc::Status NatControlServiceImpl::WatchBindings(grpc::ServerContext* context, const v1::WatchBindingsRequest* request,
                                                  grpc::ServerWriter<v1::WatchBindingsResponse>* writer) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/WatchBindings");
  if (!in.ok()) return in.status;
  if (!request->aor().empty()) {
    if (absl::Status s = CheckToken("aor", request->aor(), 1024); !s.ok()) return ToGrpc(s);
  }
  const std::string aor = request->aor();
  const grpcutil::Caller caller = in.caller;
  return Stream<BindingEvent>(
      context, caller, binding_events_,
      [aor, caller](const BindingEvent& e) {
        return caller.owns(e.binding().owner()) && (aor.empty() || e.binding().aor() == aor);
      },
      writer, watch_limits_, metrics_);
}

grpc::Status NatControlServiceImpl::AllocateSession(grpc::ServerContext* context, const v1::AllocateSessionRequest* request,
                                                    v1::AllocateSessionResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/AllocateSession");
  if (!in.ok()) return in.status;
  return Reply(sessions_->Allocate(*request, in.caller), response);
}

grpc::Status NatControlServiceImpl::AnswerSession(grpc::ServerContext* context, const v1::AnswerSessionRequest* request,
                                                  v1::AnswerSessionResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/AnswerSession");
  if (!in.ok()) return in.status;
  return Reply(sessions_->Answer(*request, in.caller), response);
}

grpc::Status NatControlServiceImpl::UpdateSession(grpc::ServerContext* context, const v1::UpdateSessionRequest* request,
                                                  v1::UpdateSessionResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/UpdateSession");
  if (!in.ok()) return in.status;
  return Reply(sessions_->Update(*request, in.caller), response);
}

grpc::Status NatControlServiceImpl::GetSession(grpc::ServerContext* context, const v1::GetSessionRequest* request,
                                               v1::GetSessionResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/GetSession");
  if (!in.ok()) return in.status;
  return Reply(sessions_->Get(request->session_id(), in.caller), response->mutable_session());
}

grpc::Status NatControlServiceImpl::ListSessions(grpc::ServerContext* context, const v1::ListSessionsRequest* request,
                                                 v1::ListSessionsResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/ListSessions");
  if (!in.ok()) return in.status;
  return Reply(sessions_->List(*request, in.caller), response);
}

grpc::Status NatControlServiceImpl::ReleaseSession(grpc::ServerContext* context, const v1::ReleaseSessionRequest* request,
                                                   v1::ReleaseSessionResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/ReleaseSession");
  if (!in.ok()) return in.status;
  return Reply(sessions_->Release(request->session_id(), in.caller), response->mutable_session());
}

grpc::Status NatControlServiceImpl::WatchSessions(grpc::ServerContext* context, const v1::WatchSessionsRequest* request,
                                                  grpc::ServerWriter<v1::WatchSessionsResponse>* writer) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/WatchSessions");
  if (!in.ok()) return in.status;
  if (!request->call_id().empty()) {
    if (absl::Status s = CheckToken("call_id", request->call_id(), 256); !s.ok()) return ToGrpc(s);
  }
  const std::string call_id = request->call_id();
  const grpcutil::Caller caller = in.caller;
  return Stream<SessionEvent>(
      context, caller, session_events_,
      [call_id, caller](const SessionEvent& e) {
        return caller.owns(e.session().owner()) && (call_id.empty() || e.session().call_id() == call_id);
      },
      writer, watch_limits_, metrics_);
}

grpc::ServerUnaryReactor* NatControlServiceImpl::ListWorkers(grpc::CallbackServerContext* context,
                                                             const v1::ListWorkersRequest*,
                                                             v1::ListWorkersResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/ListWorkers");
  if (!in.ok()) return Finish(context, in.status);
  auto workers = workers_->ListFresh(absl::Now());
  if (!workers.ok()) return Finish(context, ToGrpc(workers.status()));
  for (v1::Worker& worker : *workers) *response->add_workers() = std::move(worker);
  return Finish(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* NatControlServiceImpl::DrainWorker(grpc::CallbackServerContext* context,
                                                             const v1::DrainWorkerRequest* request,
                                                             v1::DrainWorkerResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/DrainWorker");
  if (!in.ok()) return Finish(context, in.status);
  if (absl::Status s = CheckToken("worker_id", request->worker_id(), 128); !s.ok()) return Finish(context, ToGrpc(s));
  return Finish(context, Reply(workers_->Drain(request->worker_id()), response->mutable_worker()));
}

grpc::ServerUnaryReactor* NatControlServiceImpl::UndrainWorker(grpc::CallbackServerContext* context,
                                                               const v1::UndrainWorkerRequest* request,
                                                               v1::UndrainWorkerResponse* response) {
  const grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.NatControlService/UndrainWorker");
  if (!in.ok()) return Finish(context, in.status);
  if (absl::Status s = CheckToken("worker_id", request->worker_id(), 128); !s.ok()) return Finish(context, ToGrpc(s));
  return Finish(context, Reply(workers_->Undrain(request->worker_id()), response->mutable_worker()));
}

}  // namespace latchkey::control
