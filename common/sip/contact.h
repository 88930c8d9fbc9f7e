#pragma once
// One Contact header value as a PBX hands it over from a REGISTER (RFC 3261 section 20.10):
//   sip:alice@10.0.0.5:5060;transport=udp
//   "Alice Smith" <sip:alice@10.0.0.5:5060;ob>;expires=3600;+sip.instance="<urn:uuid:...>";reg-id=1
// optionally still prefixed with its header name ("Contact:" or compact "m:", any case).
//
// A bare URI (no <>) cannot carry URI parameters by RFC 3261 - its ";params" are header parameters.
// Phones that send the bare form mean URI parameters (";transport=udp", ";line=..."), so they stay in
// the URI here: WithHostPort keeps them where they were and uri().Param() finds them. Param() on the
// Contact falls back to them too, so Expires() and InstanceId() work for either reading.
//
// Only one contact is accepted; "*" and comma-separated lists are INVALID_ARGUMENT.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/net/socket_address.h"
#include "common/sip/syntax.h"
#include "common/sip/uri.h"

namespace latchkey::sip {

class Contact {
 public:
  static absl::StatusOr<Contact> Parse(absl::string_view text);

  // The value as parsed, without the "Contact:" / "m:" header name and surrounding whitespace.
  const std::string& Unprefixed() const { return text_; }
  // With quotes and escapes resolved; empty if none.
  const std::string& display_name() const { return display_name_; }
  // True for the <...> form.
  bool is_name_addr() const { return name_addr_; }
  const SipUri& uri() const { return uri_; }

  // Header parameter by name, case-insensitive: value as written (a quoted value keeps its quotes),
  // "" for a flag, nullopt if absent. For a bare URI: its URI parameters (see above).
  std::optional<absl::string_view> Param(absl::string_view name) const;
  // +sip.instance without its quotes and <>: "urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF"; empty
  // if absent (an empty instance id identifies nothing either).
  std::string InstanceId() const;
  // The expires parameter in seconds (checked to be a number by Parse; clamped to 2^32-1).
  std::optional<uint32_t> Expires() const;

  // Unprefixed() with only the URI's host[:port] replaced by `address`.
  std::string WithHostPort(const net::SocketAddress& address) const;

 private:
  explicit Contact(SipUri uri) : uri_(std::move(uri)) {}

  std::string text_;
  std::string display_name_;
  bool name_addr_ = false;
  SipUri uri_;
  TextRange uri_range_;  // where uri_.text() sits in text_
  std::vector<ParamRange> params_;
};

}  // namespace latchkey::sip
