#pragma once
// Authorization at each handler's entry: the Gate establishes the caller's identity from its TLS
// certificate, applies the method table (common/auth/method_policy.h) and hands the handler the
// caller, or the refusal to return. Every refusal is counted, latchkey_rpc_denied_total{method,
// reason}, and logged (one line each, at most 20/s).
//
// Not an AuthMetadataProcessor, though that would run before the request is read: gRPC 1.51 sends
// every call of a server that has one through the auth filter's asynchronous path, which cost 80-94 %
// of control's throughput (docs/PERFORMANCE.md). The request is parsed first, within the port's size
// limit, and the handler's first statement is the Gate.
#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/auth/method_policy.h"
#include "grpcpp/server_context.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace latchkey::grpcutil {

// Who is calling. On a TLS server a caller the Gate admitted has an identity; on a plaintext server
// (loopback only, by construction) there is none and the caller is trusted as an operator:
// development and tests on one machine.
struct Caller {
  std::optional<auth::PeerIdentity> identity;
  bool local = false;  // a plaintext server's caller

  static Caller Local() { return Caller{std::nullopt, true}; }
  static Caller Of(auth::Role role, std::string name) { return Caller{auth::PeerIdentity{role, std::move(name)}}; }

  // Operators and plaintext callers see every record.
  bool sees_all() const { return local || (identity && identity->role == auth::Role::kOperator); }
  // What records remember as their creator ("pbx/pbx-a"); empty for a plaintext caller.
  std::string owner() const { return identity ? auth::ToString(*identity) : std::string(); }
  // May read or change a record created by `owner`.
  bool owns(absl::string_view owner) const { return sees_all() || (identity && owner == this->owner()); }
  // May act for worker `worker_id` (the worker registry).
  bool is_worker(absl::string_view worker_id) const {
    return local || (identity && identity->role == auth::Role::kWorker && identity->name == worker_id);
  }
  std::string ToString() const { return identity ? auth::ToString(*identity) : local ? "local" : "anonymous"; }
};

// A handler's entry check: the caller when admitted, else the (counted) status to return.
struct Admission {
  Caller caller;
  grpc::Status status;
  bool ok() const { return status.ok(); }
};

class Gate {
 public:
  Gate(prometheus::Registry& registry, std::string trust_domain);

  // `method` is the full path, "/latchkey.v1.NatControlService/AllocateBinding".
  Admission Admit(const grpc::ServerContextBase& context, absl::string_view method);
  // Records a refusal the handler decided itself (a worker acting for another id) and returns it.
  grpc::Status Deny(absl::string_view method, auth::DenyReason reason, const absl::Status& status,
                    absl::string_view peer);

 private:
  const std::string trust_domain_;
  prometheus::Family<prometheus::Counter>& family_;
  std::atomic<int64_t> window_start_ms_{0};
  std::atomic<int> logged_in_window_{0};
  std::atomic<int64_t> unlogged_{0};
};

}  // namespace latchkey::grpcutil
