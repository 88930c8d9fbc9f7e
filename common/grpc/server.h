#pragma once
// Starts a gRPC server the way every Latchkey server runs: the given services plus grpc.health.v1
// and server reflection, RPC metrics on every call, listening on HOST:PORT (port 0 picks one).
// With TLS: mutual TLS (handlers admit callers with a grpcutil::Gate), and no reflection. Without:
// loopback only (unless allow_insecure), a warning, and reflection for development.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "latchkey/v1/config.pb.h"
#include "prometheus/registry.h"

namespace latchkey::grpcutil {

struct StartedServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  // Sets the overall health (service "") and each named service's status.
  void SetServing(bool serving);
};

struct ServerOptions {
  v1::TlsConfig tls;
  // Requests larger than this are refused before they are parsed (RESOURCE_EXHAUSTED).
  int max_request_bytes = 4 * 1024 * 1024;
  // With TLS: a peer without a CA certificate fails the handshake. Internal ports (workers, relays),
  // whose large receive limits must not be open to anonymous senders (gRPC 1.51 reads a whole
  // request before the handler's Gate can refuse it).
  bool require_client_certificate = false;
};

absl::StatusOr<StartedServer> StartServer(const std::string& listen, const std::vector<grpc::Service*>& services,
                                          prometheus::Registry& registry, const ServerOptions& options);

// grpc.health.v1 alone, in plaintext on any address: what Kubernetes' gRPC probes (which speak no
// TLS) and load balancers check. It tells only SERVING or NOT_SERVING; the owner sets it together
// with the main server's.
absl::StatusOr<StartedServer> StartHealthServer(const std::string& listen, prometheus::Registry& registry);

}  // namespace latchkey::grpcutil
