#include "common/grpc/tls.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/time/proto_time.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace latchkey::grpcutil {
namespace {

constexpr absl::Duration kDefaultReload = absl::Seconds(10);

absl::Status CheckPem(absl::string_view field, const std::string& path, absl::string_view marker) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(field, ": cannot read \"", path, "\""));
  std::stringstream text;
  text << in.rdbuf();
  if (!absl::StrContains(text.str(), "-----BEGIN") || !absl::StrContains(text.str(), marker)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": \"", path, "\" holds no PEM ", marker));
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::experimental::FileWatcherCertificateProvider> Provider(const v1::TlsConfig& tls) {
  const int64_t seconds = std::max<int64_t>(1, absl::ToInt64Seconds(FromProto(tls.reload_interval())));
  return std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      tls.key_file(), tls.cert_file(), tls.ca_file(), static_cast<unsigned int>(seconds));
}

// The server's certificate must name the expected identity (the chain itself is verified by gRPC).
class PeerIdentityVerifier final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  PeerIdentityVerifier(std::string trust_domain, ExpectedPeer expected)
      : trust_domain_(std::move(trust_domain)), expected_(std::move(expected)) {}

  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request, std::function<void(grpc::Status)>,
              grpc::Status* sync_status) override {
    std::string seen;
    for (const grpc::string_ref& uri : request->uri_names()) {
      auto identity = auth::ParseSpiffeId(absl::string_view(uri.data(), uri.size()), trust_domain_);
      if (!identity.ok()) continue;
      if (identity->role == expected_.role && (expected_.name.empty() || identity->name == expected_.name)) {
        *sync_status = grpc::Status::OK;
        return true;
      }
      seen = auth::ToString(*identity);
    }
    const std::string wanted = expected_.name.empty() ? std::string(auth::RoleName(expected_.role))
                                                      : auth::ToString({expected_.role, expected_.name});
    *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                absl::StrCat("server certificate is not ", wanted, " in trust domain ", trust_domain_,
                                             seen.empty() ? "" : absl::StrCat(" (it is ", seen, ")")));
    return true;
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  std::string trust_domain_;
  ExpectedPeer expected_;
};

}  // namespace

void ApplyTlsDefaults(v1::TlsConfig* tls) {
  if (tls->trust_domain().empty()) tls->set_trust_domain(kDefaultTrustDomain);
  if (!tls->has_reload_interval() || FromProto(tls->reload_interval()) <= absl::ZeroDuration()) {
    *tls->mutable_reload_interval() = ToProto(kDefaultReload);
  }
}

absl::Status ValidateTls(const v1::TlsConfig& tls, absl::string_view field) {
  const int given = !tls.cert_file().empty() + !tls.key_file().empty() + !tls.ca_file().empty();
  if (given != 0 && given != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".cert_file, ", field, ".key_file, ", field, ".ca_file (--tls_cert, --tls_key, --tls_ca): ",
                     "give all three or none"));
  }
  if (!tls.trust_domain().empty() && !auth::ValidTrustDomain(tls.trust_domain())) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".trust_domain: \"", tls.trust_domain().substr(0, 64),
                                                   "\": lowercase letters, digits, '.', '-', '_'"));
  }
  if (given == 0) return absl::OkStatus();
  if (!tls.crl_directory().empty()) {
    // gRPC takes a missing CRL for "nothing revoked": a directory without one is a mistake to refuse.
    bool has_crl = false;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(tls.crl_directory(), error)) {
      const std::string name = entry.path().filename().string();
      has_crl = has_crl || (entry.is_regular_file() && name.size() > 3 && name.find(".r") == 8);
    }
    if (!has_crl) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".crl_directory (--tls_crl_dir): \"", tls.crl_directory(),
          "\" holds no hashed CRL file (HASH.r0, a regular file; scripts/pki.sh revoke makes one)"));
    }
  }
  if (absl::Status s = CheckPem(absl::StrCat(field, ".cert_file"), tls.cert_file(), "CERTIFICATE"); !s.ok()) return s;
  if (absl::Status s = CheckPem(absl::StrCat(field, ".key_file"), tls.key_file(), "PRIVATE KEY"); !s.ok()) return s;
  return CheckPem(absl::StrCat(field, ".ca_file"), tls.ca_file(), "CERTIFICATE");
}

std::shared_ptr<grpc::ServerCredentials> TlsServerCredentials(const v1::TlsConfig& tls,
                                                              bool require_client_certificate) {
  grpc::experimental::TlsServerCredentialsOptions options(Provider(tls));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  // A certificate from another CA always fails the handshake; none at all only where required.
  options.set_cert_request_type(require_client_certificate ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                                           : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!tls.crl_directory().empty()) options.set_crl_directory(tls.crl_directory());
  return grpc::experimental::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const v1::TlsConfig& tls, const ExpectedPeer& peer) {
  if (!TlsEnabled(tls)) return grpc::InsecureChannelCredentials();
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(Provider(tls));
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  options.set_check_call_host(false);
  if (!tls.crl_directory().empty()) options.set_crl_directory(tls.crl_directory());
  const std::string trust_domain = tls.trust_domain().empty() ? kDefaultTrustDomain : tls.trust_domain();
  options.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<PeerIdentityVerifier>(trust_domain, peer));
  return grpc::experimental::TlsCredentials(options);
}

}  // namespace latchkey::grpcutil
