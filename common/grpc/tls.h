#pragma once
// Mutual TLS for every Latchkey gRPC hop, from one TlsConfig: the server's credentials (a client
// certificate must chain to the CA; the caller's identity is checked per method by the handlers'
// Gate, common/grpc/auth.h) and the client's (the server must chain to the CA and carry the
// identity the caller expects; host names are not checked: relays are dialled at pod addresses no
// certificate can name). The files are watched, so a renewed certificate needs no restart.
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/auth/identity.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "latchkey/v1/config.pb.h"

namespace latchkey::grpcutil {

inline constexpr char kDefaultTrustDomain[] = "latchkey";

// Fills unset fields (trust domain, reload interval) with their defaults.
void ApplyTlsDefaults(v1::TlsConfig* tls);
// All three files or none; each readable PEM; a valid trust domain. INVALID_ARGUMENT naming
// `field`.cert_file etc.
absl::Status ValidateTls(const v1::TlsConfig& tls, absl::string_view field = "tls");
inline bool TlsEnabled(const v1::TlsConfig& tls) { return !tls.cert_file().empty(); }

// Server credentials for `tls` (which must be enabled and valid). `require_client_certificate`: a
// peer without a certificate from the CA fails the handshake (internal ports: nothing it sends is
// read); otherwise it may connect and is answered UNAUTHENTICATED (the PBX port, health on it).
std::shared_ptr<grpc::ServerCredentials> TlsServerCredentials(const v1::TlsConfig& tls,
                                                              bool require_client_certificate);

// The peer a client expects at the other end: its role, and its name when it matters (a relay's
// worker id). The check fails the handshake, so a call never reaches a server that is not it.
struct ExpectedPeer {
  auth::Role role = auth::Role::kControl;
  std::string name;  // empty: any name
};

// Channel credentials: mutual TLS when `tls` is enabled, plaintext otherwise.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const v1::TlsConfig& tls, const ExpectedPeer& peer);

}  // namespace latchkey::grpcutil
