#include "common/grpc/server.h"

#include <atomic>

#include "absl/strings/str_cat.h"
#include "common/grpc/rpc_metrics.h"
#include "common/grpc/tls.h"
#include "common/log/log.h"
#include "common/net/ip_address.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace latchkey::grpcutil {
namespace {

bool IsLoopbackListen(const std::string& listen) {
  // The host part alone: port 0 (the kernel picks) is as loopback as any other.
  const size_t colon = listen.rfind(':');
  std::string host = listen.substr(0, colon == std::string::npos ? listen.size() : colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") return true;
  auto ip = net::IpAddress::Parse(host);
  return ip.ok() && ip->IsLoopback();
}

// The server StartServer and StartHealthServer build: health (and reflection, when its plugin is
// registered), RPC metrics, one listening port.
absl::StatusOr<StartedServer> Build(const std::string& listen, const std::vector<grpc::Service*>& services,
                                    prometheus::Registry& registry, std::shared_ptr<grpc::ServerCredentials> credentials,
                                    int max_request_bytes) {
  grpc::EnableDefaultHealthCheckService(true);

  StartedServer started;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, credentials, &started.port);
  // gRPC sets SO_REUSEPORT by default: a second server on a taken port would start and silently
  // share the traffic. A taken port must be an error.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(max_request_bytes);
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

}  // namespace

void StartedServer::SetServing(bool serving) {
  if (server && server->GetHealthCheckService()) server->GetHealthCheckService()->SetServingStatus(serving);
}

absl::StatusOr<StartedServer> StartHealthServer(const std::string& listen, prometheus::Registry& registry) {
  return Build(listen, {}, registry, grpc::InsecureServerCredentials(), 4096);
}

absl::StatusOr<StartedServer> StartServer(const std::string& listen, const std::vector<grpc::Service*>& services,
                                          prometheus::Registry& registry, const ServerOptions& options) {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (TlsEnabled(options.tls)) {
    if (absl::Status s = ValidateTls(options.tls); !s.ok()) return s;
    credentials = TlsServerCredentials(options.tls, options.require_client_certificate);
  } else {
    if (!IsLoopbackListen(listen) && !options.tls.allow_insecure()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "listen ", listen, ": a non-loopback address needs mutual TLS (--tls_cert, --tls_key, --tls_ca); "
          "--allow_insecure serves it in plaintext, for a lab"));
    }
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) {
      log::LogWarning("gRPC without TLS: every caller is trusted; for development on one machine only")
          .Kv("listen", listen);
    }
    credentials = grpc::InsecureServerCredentials();
    // Reflection is a development aid: a process with TLS never registers it (the plugin is
    // process-wide), so no anonymous TLS caller can list the API.
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  }
  return Build(listen, services, registry, std::move(credentials), options.max_request_bytes);
}

}  // namespace latchkey::grpcutil
