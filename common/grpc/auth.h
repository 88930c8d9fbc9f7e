#pragma once
// Authorization at the door: an AuthMetadataProcessor that runs on every call of a TLS server before
// the request is read, establishes the caller's identity from its certificate, applies the method
// table (common/auth/method_policy.h) and stores the identity for handlers (CallerOf). Every refusal
// is counted, latchkey_rpc_denied_total{method,reason}, and logged (one line each, at most 20/s).
#include "absl/strings/string_view.h"
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "common/auth/method_policy.h"
#include "grpcpp/security/auth_metadata_processor.h"
#include "grpcpp/server_context.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace latchkey::grpcutil {

// Counts and logs refusals; shared by the processor and the handlers' own checks.
class Denials {
 public:
  explicit Denials(prometheus::Registry& registry);
  // Records a refusal of `method` (full path) for `peer` (identity text or address) and returns
  // `status` as a gRPC status.
  grpc::Status Deny(absl::string_view method, auth::DenyReason reason, const absl::Status& status,
                    absl::string_view peer);

 private:
  prometheus::Family<prometheus::Counter>& family_;
  std::atomic<int64_t> window_start_ms_{0};
  std::atomic<int> logged_in_window_{0};
  std::atomic<int64_t> unlogged_{0};
};

std::shared_ptr<grpc::AuthMetadataProcessor> MakeAuthProcessor(std::string trust_domain,
                                                                std::shared_ptr<Denials> denials);

// Who is calling. On a TLS server every handler's caller has an identity (the processor refused the
// rest); on a plaintext server (loopback only, by construction) there is none and the caller is
// trusted as an operator: development and tests on one machine.
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

Caller CallerOf(const grpc::ServerContextBase& context);

}  // namespace latchkey::grpcutil
