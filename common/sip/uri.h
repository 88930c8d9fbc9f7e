#pragma once
// A sip: or sips: URI (RFC 3261 section 19.1) as phones put it in Contact headers. The original text
// is kept with the offsets of its parts, so WithHostPort can swap host:port for the address a
// request really came from while every other byte (user, parameters, headers) stays as sent.
//
// Pragmatic choices:
//  - The first '@' ends the userinfo: '@' is not allowed unescaped anywhere else, and the user part
//    may itself contain ';', '?' and '/' ("sip:+15551234;phone-context=example.com@host").
//  - Parameter values and headers are not validated beyond being visible ASCII without '<', '>',
//    '"' (which would end the URI inside a header); escapes are not decoded.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/net/ip_address.h"
#include "common/net/socket_address.h"
#include "common/sip/syntax.h"

namespace latchkey::sip {

class SipUri {
 public:
  // INVALID_ARGUMENT quotes the text and says what is wrong.
  static absl::StatusOr<SipUri> Parse(absl::string_view text);

  // The URI exactly as parsed.
  const std::string& text() const { return text_; }
  // "sip" or "sips", lower case whatever was written.
  absl::string_view scheme() const { return sips_ ? "sips" : "sip"; }
  bool is_sips() const { return sips_; }
  // As written (escapes not decoded); empty without userinfo.
  absl::string_view user() const { return user_.In(text_); }
  // nullopt without "user:password@".
  std::optional<absl::string_view> password() const;
  // Without brackets: "10.0.0.5", "2001:db8::1", "pbx.example.com".
  absl::string_view host() const { return host_.name.In(text_); }
  bool host_is_ip() const { return host_.ip.has_value(); }
  const std::optional<net::IpAddress>& ip() const { return host_.ip; }
  // The port written in the URI, if any.
  std::optional<uint16_t> port() const { return port_; }
  // The explicit port, else 5061 for sips or transport=tls, else 5060.
  uint16_t EffectivePort() const;

  // URI parameter by name, case-insensitive: its value, "" for a flag (";lr"), nullopt if absent.
  std::optional<absl::string_view> Param(absl::string_view name) const;
  // The transport parameter as written ("udp", "TCP", ...), empty if absent.
  absl::string_view transport() const;
  // "?X=y&Z=w" without the '?', empty if none.
  absl::string_view headers() const { return headers_.In(text_); }

  // The original text with host[:port] replaced by `address` (IPv6 bracketed) and nothing else
  // changed.
  std::string WithHostPort(const net::SocketAddress& address) const;

 private:
  SipUri() = default;

  std::string text_;
  bool sips_ = false;
  TextRange user_;
  std::optional<TextRange> password_;
  ParsedHost host_;
  TextRange host_port_;  // host (with brackets) and ":port" if written: what WithHostPort replaces
  std::optional<uint16_t> port_;
  std::vector<ParamRange> params_;
  TextRange headers_;
};

}  // namespace latchkey::sip
