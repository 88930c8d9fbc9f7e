#include "common/grpc/auth.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "grpc/grpc_security_constants.h"

namespace latchkey::grpcutil {
namespace {

constexpr int kLogsPerSecond = 20;
// What gRPC's insecure credentials put in transport_security_type (no public constant for it).
constexpr absl::string_view kInsecureTransport = "insecure";

absl::string_view View(const grpc::string_ref& ref) { return absl::string_view(ref.data(), ref.size()); }

}  // namespace

Gate::Gate(prometheus::Registry& registry, std::string trust_domain)
    : trust_domain_(std::move(trust_domain)),
      family_(prometheus::BuildCounter()
                  .Name("latchkey_rpc_denied_total")
                  .Help("gRPC calls refused by authentication or authorization, by method and reason")
                  .Register(registry)) {}

Admission Gate::Admit(const grpc::ServerContextBase& context, absl::string_view method) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  // Fail closed: only a connection gRPC itself calls insecure is trusted without an identity (a
  // plaintext server binds loopback only); any other caller is who its certificate says, or nobody.
  absl::string_view transport;
  if (auth) {
    for (const grpc::string_ref& value : auth->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME)) {
      transport = View(value);
    }
  }
  if (transport == kInsecureTransport) return Admission{Caller::Local(), grpc::Status::OK};

  std::optional<auth::PeerIdentity> identity;
  std::string identity_error;
  if (auth) {
    // Exactly one URI SAN, as SPIFFE requires: a certificate naming two identities (pbx and
    // operator, say) must not get whichever one comes first.
    const std::vector<grpc::string_ref> uris = auth->FindPropertyValues(GRPC_PEER_URI_PROPERTY_NAME);
    if (uris.size() > 1) {
      identity_error = absl::StrCat("the certificate has ", uris.size(), " URI SANs; exactly one is allowed");
    } else if (uris.size() == 1) {
      auto parsed = auth::ParseSpiffeId(View(uris.front()), trust_domain_);
      if (parsed.ok()) {
        identity = *std::move(parsed);
      } else {
        identity_error = absl::StrCat("\"", View(uris.front()).substr(0, 200), "\": ", parsed.status().message());
      }
    }
  }
  const auth::Decision decision = auth::Authorize(method, identity ? &*identity : nullptr, identity_error);
  Caller caller{identity, false};
  if (decision.ok()) return Admission{std::move(caller), grpc::Status::OK};
  grpc::Status refused = Deny(method, decision.reason, decision.status, caller.ToString());
  return Admission{std::move(caller), std::move(refused)};
}

grpc::Status Gate::Deny(absl::string_view method, auth::DenyReason reason, const absl::Status& status,
                        absl::string_view peer) {
  const absl::string_view label = auth::MethodLabel(method);
  family_.Add({{"method", std::string(label)}, {"reason", std::string(auth::DenyReasonLabel(reason))}}).Increment();
  // One line per refusal, but a scanner must not turn the log into the bottleneck.
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  int64_t start = window_start_ms_.load(std::memory_order_relaxed);
  if (now_ms - start >= 1000 && window_start_ms_.compare_exchange_strong(start, now_ms)) {
    logged_in_window_.store(0, std::memory_order_relaxed);
  }
  if (logged_in_window_.fetch_add(1, std::memory_order_relaxed) < kLogsPerSecond) {
    log::LogWarning("rpc denied")
        .Kv("method", label)
        .Kv("reason", auth::DenyReasonLabel(reason))
        .Kv("peer", peer)
        .Kv("error", status.message())
        .Kv("unlogged_before", unlogged_.exchange(0, std::memory_order_relaxed));
  } else {
    unlogged_.fetch_add(1, std::memory_order_relaxed);
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

}  // namespace latchkey::grpcutil
