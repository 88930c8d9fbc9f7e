#include "media-relay/agent/relay_service.h"

#include "absl/time/clock.h"
#include "common/grpc/status.h"
#include "common/log/log.h"

namespace latchkey::relay {
namespace {

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return grpcutil::ToGrpc(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status RelayServiceImpl::CreateRelaySession(grpc::ServerContext*, const v1::CreateRelaySessionRequest* request,
                                                  v1::CreateRelaySessionResponse* response) {
  auto result = sessions_->Create(*request, absl::Now());
  (result.ok() ? metrics_->sessions_created : metrics_->create_failures)->Increment();
  if (result.ok()) {
    log::LogInfo("relay session created")
        .Kv("session_id", request->session().session_id())
        .Kv("streams", request->stream_count());
  }
  return Reply(std::move(result), response);
}

grpc::Status RelayServiceImpl::UpdateRelaySession(grpc::ServerContext*, const v1::UpdateRelaySessionRequest* request,
                                                  v1::UpdateRelaySessionResponse* response) {
  return Reply(sessions_->Update(*request, absl::Now()), response);
}

grpc::Status RelayServiceImpl::DeleteRelaySession(grpc::ServerContext*, const v1::DeleteRelaySessionRequest* request,
                                                  v1::DeleteRelaySessionResponse* response) {
  auto result = sessions_->Delete(request->session_id(), absl::Now());
  if (result.ok()) {
    metrics_->ClosedCounter(request->reason())->Increment();
    log::LogInfo("relay session deleted").Kv("session_id", request->session_id());
  }
  return Reply(std::move(result), response);
}

grpc::Status RelayServiceImpl::GetRelaySession(grpc::ServerContext*, const v1::GetRelaySessionRequest* request,
                                               v1::GetRelaySessionResponse* response) {
  return Reply(sessions_->Get(request->session_id()), response);
}

grpc::Status RelayServiceImpl::SetKeepalives(grpc::ServerContext*, const v1::SetKeepalivesRequest* request,
                                             v1::SetKeepalivesResponse* response) {
  if (!keepalives_) return grpcutil::ToGrpc(absl::FailedPreconditionError("keepalives are off on this worker"));
  keepalives_->Apply(*request, response);
  return grpc::Status::OK;
}

grpc::Status RelayServiceImpl::DrainRelay(grpc::ServerContext*, const v1::DrainRelayRequest*,
                                          v1::DrainRelayResponse* response) {
  sessions_->SetDraining(true);
  response->set_sessions(static_cast<uint32_t>(sessions_->size()));
  return grpc::Status::OK;
}

}  // namespace latchkey::relay
