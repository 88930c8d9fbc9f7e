#pragma once
// Counts every RPC a server answers by method and status code, and times it, through a gRPC server
// interceptor, so no handler has to remember to.
//   latchkey_rpc_requests_total{method="AllocateBinding",code="OK"}
//   latchkey_rpc_duration_seconds{method="AllocateBinding"}
#include <memory>

#include "grpcpp/support/server_interceptor.h"
#include "prometheus/registry.h"

namespace latchkey::grpcutil {

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcMetricsInterceptorFactory(
    prometheus::Registry& registry);

}  // namespace latchkey::grpcutil
