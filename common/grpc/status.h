#pragma once
// absl::Status <-> grpc::Status: the codes are numerically identical by design.
#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace latchkey::grpcutil {

inline grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

inline absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace latchkey::grpcutil
