#pragma once
// The RelayService control calls: thin gRPC adapter over the SessionTable. Callback API: every
// handler answers at once, and the synchronous API's thread-per-call pool spawned and reaped
// hundreds of threads per second while control set up calls (on the packet threads' cores).
#include "common/grpc/auth.h"
#include "latchkey/v1/worker.grpc.pb.h"
#include "media-relay/keepalive/keepalive_sender.h"
#include "media-relay/metrics/relay_metrics.h"
#include "media-relay/sessions/session_table.h"

namespace latchkey::relay {

class RelayServiceImpl final : public v1::RelayService::CallbackService {
 public:
  // Every handler first admits its caller through `gate` (only control may call). `keepalives` may be
  // null (keepalives off): SetKeepalives then answers FAILED_PRECONDITION.
  RelayServiceImpl(SessionTable* sessions, RelayMetrics* metrics, grpcutil::Gate* gate,
                   KeepaliveSender* keepalives = nullptr)
      : sessions_(sessions), metrics_(metrics), gate_(gate), keepalives_(keepalives) {}

  grpc::ServerUnaryReactor* CreateRelaySession(grpc::CallbackServerContext* context,
                                               const v1::CreateRelaySessionRequest* request,
                                               v1::CreateRelaySessionResponse* response) override;
  grpc::ServerUnaryReactor* UpdateRelaySession(grpc::CallbackServerContext* context,
                                               const v1::UpdateRelaySessionRequest* request,
                                               v1::UpdateRelaySessionResponse* response) override;
  grpc::ServerUnaryReactor* DeleteRelaySession(grpc::CallbackServerContext* context,
                                               const v1::DeleteRelaySessionRequest* request,
                                               v1::DeleteRelaySessionResponse* response) override;
  grpc::ServerUnaryReactor* GetRelaySession(grpc::CallbackServerContext* context,
                                            const v1::GetRelaySessionRequest* request,
                                            v1::GetRelaySessionResponse* response) override;
  grpc::ServerUnaryReactor* SetKeepalives(grpc::CallbackServerContext* context, const v1::SetKeepalivesRequest* request,
                                          v1::SetKeepalivesResponse* response) override;
  grpc::ServerUnaryReactor* DrainRelay(grpc::CallbackServerContext* context, const v1::DrainRelayRequest* request,
                                       v1::DrainRelayResponse* response) override;

 private:
  SessionTable* sessions_;
  RelayMetrics* metrics_;
  grpcutil::Gate* gate_;
  KeepaliveSender* keepalives_;
};

}  // namespace latchkey::relay
