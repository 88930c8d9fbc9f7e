#include "common/grpc/auth.h"

#include "absl/time/clock.h"
#include "common/log/log.h"
#include "grpc/grpc_security_constants.h"

namespace latchkey::grpcutil {
namespace {

constexpr char kRoleProperty[] = "latchkey_role";
constexpr char kNameProperty[] = "latchkey_name";
constexpr int kLogsPerSecond = 20;
// What gRPC's insecure credentials put in transport_security_type (no public constant for it).
constexpr absl::string_view kInsecureTransport = "insecure";

absl::string_view View(const grpc::string_ref& ref) { return absl::string_view(ref.data(), ref.size()); }

class AuthProcessor final : public grpc::AuthMetadataProcessor {
 public:
  AuthProcessor(std::string trust_domain, std::shared_ptr<Denials> denials)
      : trust_domain_(std::move(trust_domain)), denials_(std::move(denials)) {}

  // Cheap and non-blocking: runs on the transport's thread, no hand-off per call.
  bool IsBlocking() const override { return false; }

  grpc::Status Process(const InputMetadata& metadata, grpc::AuthContext* context, OutputMetadata*,
                       OutputMetadata*) override {
    absl::string_view method;
    if (auto it = metadata.find(":path"); it != metadata.end()) method = View(it->second);

    std::optional<auth::PeerIdentity> identity;
    std::string identity_error;
    for (const char* property : {GRPC_PEER_URI_PROPERTY_NAME, GRPC_PEER_SPIFFE_ID_PROPERTY_NAME}) {
      for (const grpc::string_ref& uri : context->FindPropertyValues(property)) {
        auto parsed = auth::ParseSpiffeId(View(uri), trust_domain_);
        if (parsed.ok()) {
          identity = *std::move(parsed);
          break;
        }
        identity_error = absl::StrCat("\"", View(uri).substr(0, 200), "\": ", parsed.status().message());
      }
      if (identity) break;
    }

    const auth::Decision decision = auth::Authorize(method, identity ? &*identity : nullptr, identity_error);
    if (!decision.ok()) {
      std::string peer = identity ? auth::ToString(*identity) : "anonymous";
      return denials_->Deny(method, decision.reason, decision.status, peer);
    }
    if (identity) {
      context->AddProperty(kRoleProperty, std::string(auth::RoleName(identity->role)));
      context->AddProperty(kNameProperty, identity->name);
    }
    return grpc::Status::OK;
  }

 private:
  std::string trust_domain_;
  std::shared_ptr<Denials> denials_;
};

}  // namespace

Denials::Denials(prometheus::Registry& registry)
    : family_(prometheus::BuildCounter()
                  .Name("latchkey_rpc_denied_total")
                  .Help("gRPC calls refused by authentication or authorization, by method and reason")
                  .Register(registry)) {}

grpc::Status Denials::Deny(absl::string_view method, auth::DenyReason reason, const absl::Status& status,
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

std::shared_ptr<grpc::AuthMetadataProcessor> MakeAuthProcessor(std::string trust_domain,
                                                                std::shared_ptr<Denials> denials) {
  return std::make_shared<AuthProcessor>(std::move(trust_domain), std::move(denials));
}

Caller CallerOf(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  // Fail closed: only a connection gRPC itself calls insecure is trusted without an identity (a
  // plaintext server binds loopback only). Any other (TLS) caller is whoever the processor found,
  // or nobody.
  absl::string_view type;
  if (auth) {
    for (const grpc::string_ref& value : auth->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME)) {
      type = View(value);
    }
  }
  if (type == kInsecureTransport) return Caller::Local();
  Caller caller;
  if (!auth) return caller;
  auto roles = auth->FindPropertyValues(kRoleProperty);
  auto names = auth->FindPropertyValues(kNameProperty);
  if (roles.empty() || names.empty()) return caller;
  std::optional<auth::Role> role = auth::ParseRole(View(roles.front()));
  if (role) caller.identity = auth::PeerIdentity{*role, std::string(View(names.front()))};
  return caller;
}

}  // namespace latchkey::grpcutil
