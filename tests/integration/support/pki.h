#pragma once
// The shared test CA (made at build time with scripts/pki.sh) and certificates issued from it on
// demand, so every integration test runs its processes with mutual TLS like a deployment does.
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/auth/identity.h"
#include "latchkey/v1/config.pb.h"

namespace latchkey::testing {

// The build's test CA directory.
std::string TestPkiDir();

// Runs scripts/pki.sh with `args` (e.g. {dir, "issue", "pbx", "a", "--expired"}); the output on failure.
absl::Status RunPki(const std::vector<std::string>& args);

// TLS config for `role`/`name` from the test CA, issuing the certificate on first use with
// `issue_options` (scripts/pki.sh: --expired, --trust_domain=D; the name must then be unique to them).
absl::StatusOr<v1::TlsConfig> TestTls(auth::Role role, const std::string& name,
                                      const std::vector<std::string>& issue_options = {});
// The same as --tls_cert/--tls_key/--tls_ca flags.
std::vector<std::string> TlsFlags(const v1::TlsConfig& tls);

}  // namespace latchkey::testing
