#pragma once
// Starts a gRPC server the way every Latchkey server runs: the given services plus grpc.health.v1
// and server reflection, RPC metrics on every call, listening on HOST:PORT (port 0 picks one).
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/registry.h"

namespace latchkey::grpcutil {

struct StartedServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  // Sets the overall health (service "") and each named service's status.
  void SetServing(bool serving);
};

absl::StatusOr<StartedServer> StartServer(const std::string& listen, const std::vector<grpc::Service*>& services,
                                          prometheus::Registry& registry);

}  // namespace latchkey::grpcutil
