#include "common/sip/contact.h"

#include <algorithm>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/net/quote_for_error.h"
#include "common/status_macros.h"

namespace latchkey::sip {
namespace {

constexpr absl::string_view kWhat = "Contact";

// A display name that is not quoted: tokens and whitespace (RFC 3261), plus UTF-8 bytes that phones
// send unquoted. No ':', so "m:<sip:...>" can never be read back as a display name "m:".
bool IsValidTokenDisplayName(absl::string_view name) {
  for (char c : name) {
    if (!IsTokenChar(c) && !IsSipSpace(c) && static_cast<unsigned char>(c) < 0x80) return false;
  }
  return true;
}

// delta-seconds; values past 2^32-1 are clamped (RFC 3261 section 20.19's advice for Expires).
std::optional<uint32_t> ParseSeconds(absl::string_view text) {
  if (text.empty()) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
    value = std::min<uint64_t>(value * 10 + static_cast<uint64_t>(c - '0'), std::numeric_limits<uint32_t>::max());
  }
  return static_cast<uint32_t>(value);
}

}  // namespace

absl::StatusOr<Contact> Contact::Parse(absl::string_view input) {
  absl::string_view value = TrimSpace(StripHeaderName(input, "contact", "m"));
  if (value.empty()) return SyntaxError(kWhat, input, "empty value");
  if (value == "*") {
    return absl::InvalidArgumentError("Contact \"*\" (remove every binding) is not a single contact");
  }
  if (FindUnquoted(value, ',', /*skip_angle_brackets=*/true) != absl::string_view::npos) {
    return SyntaxError(kWhat, value, "only one contact is allowed, found a ',' separating several");
  }

  // Find the URI: between '<' and '>' after an optional display name, or the whole bare value.
  std::string display_name;
  size_t uri_begin = 0;
  size_t uri_end = value.size();
  size_t after_uri = value.size();
  bool name_addr = false;
  if (value.front() == '"') {
    size_t name_end = SkipQuotedString(value, 0);
    if (name_end == absl::string_view::npos) return SyntaxError(kWhat, value, "unterminated quoted display name");
    display_name = UnquoteString(value.substr(0, name_end));
    uri_begin = SkipSpace(value, name_end);
    if (uri_begin >= value.size() || value[uri_begin] != '<') {
      return SyntaxError(kWhat, value, "expected '<' after the display name");
    }
    name_addr = true;
  } else if (size_t less = value.find('<'); less != absl::string_view::npos) {
    absl::string_view name = TrimSpace(value.substr(0, less));
    if (!IsValidTokenDisplayName(name)) return SyntaxError(kWhat, value, "invalid character in display name");
    display_name = std::string(name);
    uri_begin = less;
    name_addr = true;
  }
  if (name_addr) {
    size_t greater = value.find('>', uri_begin);
    if (greater == absl::string_view::npos) return SyntaxError(kWhat, value, "missing '>' after the URI");
    uri_end = greater;
    uri_begin += 1;
    after_uri = greater + 1;
  }

  absl::StatusOr<SipUri> uri = SipUri::Parse(value.substr(uri_begin, uri_end - uri_begin));
  if (!uri.ok()) return absl::InvalidArgumentError(absl::StrCat("Contact: ", uri.status().message()));
  Contact contact(*std::move(uri));
  contact.text_ = std::string(value);
  contact.display_name_ = std::move(display_name);
  contact.name_addr_ = name_addr;
  contact.uri_range_ = {uri_begin, uri_end};
  ASSIGN_OR_RETURN(contact.params_, ParseHeaderParams(contact.text_, after_uri, kWhat));

  std::optional<absl::string_view> expires = contact.Param("expires");
  if (expires.has_value() && !ParseSeconds(*expires).has_value()) {
    return SyntaxError(kWhat, value, absl::StrCat("expires ", net::QuoteForError(*expires), " is not a number of seconds"));
  }
  return contact;
}

std::optional<absl::string_view> Contact::Param(absl::string_view name) const {
  std::optional<absl::string_view> value = FindParam(text_, params_, name);
  if (!value.has_value() && !name_addr_) return uri_.Param(name);
  return value;
}

std::string Contact::InstanceId() const {
  absl::string_view id = Param("+sip.instance").value_or("");
  if (id.size() >= 2 && id.front() == '"' && id.back() == '"') id = id.substr(1, id.size() - 2);
  if (id.size() >= 2 && id.front() == '<' && id.back() == '>') id = id.substr(1, id.size() - 2);
  return std::string(id);
}

std::optional<uint32_t> Contact::Expires() const {
  std::optional<absl::string_view> value = Param("expires");
  if (!value.has_value()) return std::nullopt;
  return ParseSeconds(*value);
}

std::string Contact::WithHostPort(const net::SocketAddress& address) const {
  absl::string_view t = text_;
  return absl::StrCat(t.substr(0, uri_range_.begin), uri_.WithHostPort(address), t.substr(uri_range_.end));
}

}  // namespace latchkey::sip
