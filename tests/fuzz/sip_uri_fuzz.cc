// Parses arbitrary bytes as a SIP URI; whatever parses must survive WithHostPort and parse again with
// the new host:port and every other part unchanged. A Contact rewritten for NAT that our own parser
// (or the PBX, on the next request) then refuses would break the registration.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/net/socket_address.h"
#include "common/sip/uri.h"

namespace net = latchkey::net;
namespace sip = latchkey::sip;

namespace {

void Check(bool condition, const char* what, absl::string_view input) {
  if (condition) return;
  std::fprintf(stderr, "property violated: %s\ninput: %.*s\n", what, static_cast<int>(input.size()), input.data());
  std::abort();
}

void CheckRewrite(const sip::SipUri& uri, const net::SocketAddress& address) {
  const std::string rewritten = uri.WithHostPort(address);
  const absl::StatusOr<sip::SipUri> again = sip::SipUri::Parse(rewritten);
  Check(again.ok(), "WithHostPort result does not parse", rewritten);
  Check(again->ip() == address.ip && again->port() == address.port, "host:port not replaced", rewritten);
  Check(again->is_sips() == uri.is_sips(), "scheme changed", rewritten);
  Check(again->user() == uri.user() && again->password() == uri.password(), "userinfo changed", rewritten);
  Check(again->transport() == uri.transport() && again->headers() == uri.headers(), "params/headers changed",
        rewritten);
  Check(again->Param("lr") == uri.Param("lr") && again->Param("ob") == uri.Param("ob"), "flags changed", rewritten);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<sip::SipUri> uri = sip::SipUri::Parse(text);
  if (!uri.ok()) return 0;

  Check(uri->text() == text, "text() differs from the input", text);
  Check(uri->host_is_ip() == uri->ip().has_value(), "host_is_ip inconsistent", text);
  Check(!uri->port().has_value() || uri->EffectivePort() == *uri->port(), "EffectivePort ignores the port", text);
  (void)uri->Param("lr");
  (void)uri->Param("ob");

  CheckRewrite(*uri, net::SocketAddress::Parse("203.0.113.7:41234").value());
  CheckRewrite(*uri, net::SocketAddress::Parse("[2001:db8::7]:5060").value());
  return 0;
}
