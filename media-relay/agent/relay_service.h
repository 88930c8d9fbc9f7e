#pragma once
// The RelayService control calls: thin gRPC adapter over the SessionTable.
#include "latchkey/v1/worker.grpc.pb.h"
#include "media-relay/keepalive/keepalive_sender.h"
#include "media-relay/metrics/relay_metrics.h"
#include "media-relay/sessions/session_table.h"

namespace latchkey::relay {

class RelayServiceImpl final : public v1::RelayService::Service {
 public:
  // `keepalives` may be null (keepalives off): SetKeepalives then answers FAILED_PRECONDITION.
  RelayServiceImpl(SessionTable* sessions, RelayMetrics* metrics, KeepaliveSender* keepalives = nullptr)
      : sessions_(sessions), metrics_(metrics), keepalives_(keepalives) {}

  grpc::Status CreateRelaySession(grpc::ServerContext*, const v1::CreateRelaySessionRequest* request,
                                  v1::CreateRelaySessionResponse* response) override;
  grpc::Status UpdateRelaySession(grpc::ServerContext*, const v1::UpdateRelaySessionRequest* request,
                                  v1::UpdateRelaySessionResponse* response) override;
  grpc::Status DeleteRelaySession(grpc::ServerContext*, const v1::DeleteRelaySessionRequest* request,
                                  v1::DeleteRelaySessionResponse* response) override;
  grpc::Status GetRelaySession(grpc::ServerContext*, const v1::GetRelaySessionRequest* request,
                               v1::GetRelaySessionResponse* response) override;
  grpc::Status SetKeepalives(grpc::ServerContext*, const v1::SetKeepalivesRequest* request,
                             v1::SetKeepalivesResponse* response) override;
  grpc::Status DrainRelay(grpc::ServerContext*, const v1::DrainRelayRequest* request,
                          v1::DrainRelayResponse* response) override;

 private:
  SessionTable* sessions_;
  RelayMetrics* metrics_;
  KeepaliveSender* keepalives_;
};

}  // namespace latchkey::relay
