#pragma once
// The TLS flags every Latchkey binary takes (--tls_cert, --tls_key, --tls_ca, --trust_domain,
// --allow_insecure): set on the command line, they override the config file's TlsConfig.
#include "latchkey/v1/config.pb.h"

namespace latchkey::grpcutil {

void ApplyTlsFlags(v1::TlsConfig* tls);

}  // namespace latchkey::grpcutil
