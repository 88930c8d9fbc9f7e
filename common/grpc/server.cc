#include "common/grpc/server.h"

#include "absl/strings/str_cat.h"
#include "common/grpc/rpc_metrics.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace latchkey::grpcutil {

void StartedServer::SetServing(bool serving) {
  if (server && server->GetHealthCheckService()) server->GetHealthCheckService()->SetServingStatus(serving);
}

absl::StatusOr<StartedServer> StartServer(const std::string& listen, const std::vector<grpc::Service*>& services,
                                          prometheus::Registry& registry) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  StartedServer started;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &started.port);
  // gRPC sets SO_REUSEPORT by default: a second server on a taken port would start and silently
  // share the traffic. A taken port must be an error.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // A worker re-announces every session it carries in one RegisterWorker (~500 B each): 10,000
  // sessions exceed gRPC's 4 MiB default.
  builder.SetMaxReceiveMessageSize(64 * 1024 * 1024);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(MakeRpcMetricsInterceptorFactory(registry));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));

  started.server = builder.BuildAndStart();
  if (!started.server || started.port == 0) {
    return absl::UnavailableError(absl::StrCat("listen ", listen, ": cannot bind gRPC server"));
  }
  // Not serving until the owner says it is ready.
  started.SetServing(false);
  return started;
}

}  // namespace latchkey::grpcutil
