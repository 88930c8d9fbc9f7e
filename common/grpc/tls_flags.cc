#include "common/grpc/tls_flags.h"

#include <string>

#include "absl/flags/flag.h"
#include "common/config/flags.h"

ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain of this process; with --tls_key and --tls_ca: mutual TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA bundle peers' certificates must chain to");
ABSL_FLAG(std::string, tls_crl_dir, "", "directory of hashed CRLs of --tls_ca (openssl rehash): revoked peers fail the handshake");
ABSL_FLAG(std::string, trust_domain, "latchkey", "SPIFFE trust domain of every identity (spiffe://DOMAIN/latchkey/ROLE/NAME)");
ABSL_FLAG(bool, allow_insecure, false, "serve plaintext gRPC on a non-loopback address (a lab behind its own firewall)");

namespace latchkey::grpcutil {

void ApplyTlsFlags(v1::TlsConfig* tls) {
  if (config::FlagGiven(FLAGS_tls_cert)) tls->set_cert_file(absl::GetFlag(FLAGS_tls_cert));
  if (config::FlagGiven(FLAGS_tls_key)) tls->set_key_file(absl::GetFlag(FLAGS_tls_key));
  if (config::FlagGiven(FLAGS_tls_ca)) tls->set_ca_file(absl::GetFlag(FLAGS_tls_ca));
  if (config::FlagGiven(FLAGS_tls_crl_dir)) tls->set_crl_directory(absl::GetFlag(FLAGS_tls_crl_dir));
  if (config::FlagGiven(FLAGS_trust_domain)) tls->set_trust_domain(absl::GetFlag(FLAGS_trust_domain));
  if (config::FlagGiven(FLAGS_allow_insecure)) tls->set_allow_insecure(absl::GetFlag(FLAGS_allow_insecure));
}

}  // namespace latchkey::grpcutil
