#pragma once
// Answering unary calls: from an absl::StatusOr, and on the callback API's default reactor (for
// handlers that answer at once, without parking a thread per call as the synchronous API does).
#include "absl/status/statusor.h"
#include "common/grpc/status.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"

namespace latchkey::grpcutil {

// Sets `*out` from an OK result, or returns its status as a gRPC error.
template <typename T, typename Out>
grpc::Status Reply(absl::StatusOr<T> result, Out* out) {
  if (!result.ok()) return ToGrpc(result.status());
  *out = *std::move(result);
  return grpc::Status::OK;
}

inline grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace latchkey::grpcutil
