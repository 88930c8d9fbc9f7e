#pragma once
// The top Via of a request (RFC 3261 section 20.42), as a PBX passes it: either the whole header
// value "SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK776asdhds;rport" (optionally prefixed with
// "Via:" or compact "v:", a comma-separated list meaning its first entry) or just the sent-by
// "host[:port]". Only what NAT detection needs is kept: transport, sent-by and parameters.
// (A bare sent-by whose host is literally "via" or "v" followed by ':' reads as a header name; no
// real host is called that.)
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/net/ip_address.h"
#include "common/sip/syntax.h"

namespace latchkey::sip {

class Via {
 public:
  static absl::StatusOr<Via> Parse(absl::string_view text);

  // The top Via value as parsed (header name, whitespace and later entries dropped).
  const std::string& text() const { return text_; }
  // "UDP", "TCP", "TLS", "WS", "WSS", ... upper-cased; empty when only a sent-by was given.
  const std::string& transport() const { return transport_; }
  // sent-by host without brackets.
  absl::string_view host() const { return host_.name.In(text_); }
  bool host_is_ip() const { return host_.ip.has_value(); }
  const std::optional<net::IpAddress>& ip() const { return host_.ip; }
  std::optional<uint16_t> port() const { return port_; }
  // The sent-by port, else 5061 for TLS, else 5060.
  uint16_t EffectivePort() const;

  // Via parameter by name, case-insensitive: value as written, "" for a flag, nullopt if absent.
  std::optional<absl::string_view> Param(absl::string_view name) const;
  // RFC 3581: the client asks for responses to its source port.
  bool has_rport() const { return Param("rport").has_value(); }

 private:
  Via() = default;

  std::string text_;
  std::string transport_;
  ParsedHost host_;
  std::optional<uint16_t> port_;
  std::vector<ParamRange> params_;
};

}  // namespace latchkey::sip
