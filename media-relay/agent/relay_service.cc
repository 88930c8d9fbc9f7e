#include "media-relay/agent/relay_service.h"

#include "absl/time/clock.h"
#include "common/grpc/unary.h"
#include "common/log/log.h"

namespace latchkey::relay {

using grpcutil::Finish;
using grpcutil::Reply;

grpc::ServerUnaryReactor* RelayServiceImpl::CreateRelaySession(grpc::CallbackServerContext* context,
                                                               const v1::CreateRelaySessionRequest* request,
                                                               v1::CreateRelaySessionResponse* response) {
  if (grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.RelayService/CreateRelaySession"); !in.ok()) {
    return Finish(context, in.status);
  }
  auto result = sessions_->Create(*request, absl::Now());
  (result.ok() ? metrics_->sessions_created : metrics_->create_failures)->Increment();
  if (result.ok()) {
    log::LogInfo("relay session created")
        .Kv("session_id", request->session().session_id())
        .Kv("streams", request->stream_count());
  }
  return Finish(context, Reply(std::move(result), response));
}

grpc::ServerUnaryReactor* RelayServiceImpl::UpdateRelaySession(grpc::CallbackServerContext* context,
                                                               const v1::UpdateRelaySessionRequest* request,
                                                               v1::UpdateRelaySessionResponse* response) {
  if (grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.RelayService/UpdateRelaySession"); !in.ok()) {
    return Finish(context, in.status);
  }
  return Finish(context, Reply(sessions_->Update(*request, absl::Now()), response));
}

grpc::ServerUnaryReactor* RelayServiceImpl::DeleteRelaySession(grpc::CallbackServerContext* context,
                                                               const v1::DeleteRelaySessionRequest* request,
                                                               v1::DeleteRelaySessionResponse* response) {
  if (grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.RelayService/DeleteRelaySession"); !in.ok()) {
    return Finish(context, in.status);
  }
  auto result = sessions_->Delete(request->session_id(), absl::Now());
  if (result.ok()) {
    metrics_->ClosedCounter(request->reason())->Increment();
    log::LogInfo("relay session deleted").Kv("session_id", request->session_id());
  }
  return Finish(context, Reply(std::move(result), response));
}

grpc::ServerUnaryReactor* RelayServiceImpl::GetRelaySession(grpc::CallbackServerContext* context,
                                                            const v1::GetRelaySessionRequest* request,
                                                            v1::GetRelaySessionResponse* response) {
  if (grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.RelayService/GetRelaySession"); !in.ok()) {
    return Finish(context, in.status);
  }
  return Finish(context, Reply(sessions_->Get(request->session_id()), response));
}

grpc::ServerUnaryReactor* RelayServiceImpl::SetKeepalives(grpc::CallbackServerContext* context,
                                                          const v1::SetKeepalivesRequest* request,
                                                          v1::SetKeepalivesResponse* response) {
  if (grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.RelayService/SetKeepalives"); !in.ok()) {
    return Finish(context, in.status);
  }
  if (!keepalives_) {
    return Finish(context, grpcutil::ToGrpc(absl::FailedPreconditionError("keepalives are off on this worker")));
  }
  return Finish(context, grpcutil::ToGrpc(keepalives_->Apply(*request, response)));
}

grpc::ServerUnaryReactor* RelayServiceImpl::DrainRelay(grpc::CallbackServerContext* context,
                                                       const v1::DrainRelayRequest*, v1::DrainRelayResponse* response) {
  if (grpcutil::Admission in = gate_->Admit(*context, "/latchkey.v1.RelayService/DrainRelay"); !in.ok()) {
    return Finish(context, in.status);
  }
  sessions_->SetDraining(true);
  response->set_sessions(static_cast<uint32_t>(sessions_->size()));
  return Finish(context, grpc::Status::OK);
}

}  // namespace latchkey::relay
