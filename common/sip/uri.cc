#include "common/sip/uri.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace latchkey::sip {
namespace {

constexpr absl::string_view kWhat = "SIP URI";

// Any visible ASCII but the characters that end a URI inside a header ('<', '>', '"').
bool IsUriChar(char c) { return c > ' ' && c < 0x7f && c != '<' && c != '>' && c != '"'; }

bool AllUriChars(absl::string_view text) {
  for (char c : text) {
    if (!IsUriChar(c)) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<SipUri> SipUri::Parse(absl::string_view text) {
  SipUri uri;
  uri.text_ = std::string(text);
  absl::string_view t = uri.text_;

  size_t colon = t.find(':');
  absl::string_view scheme = t.substr(0, colon);
  if (colon == absl::string_view::npos ||
      !(absl::EqualsIgnoreCase(scheme, "sip") || absl::EqualsIgnoreCase(scheme, "sips"))) {
    return SyntaxError(kWhat, t, "scheme must be sip: or sips:");
  }
  uri.sips_ = scheme.size() == 4;
  size_t pos = colon + 1;

  size_t at = t.find('@', pos);
  if (at != absl::string_view::npos) {
    absl::string_view userinfo = t.substr(pos, at - pos);
    size_t password_colon = userinfo.find(':');
    uri.user_ = {pos, password_colon == absl::string_view::npos ? at : pos + password_colon};
    if (password_colon != absl::string_view::npos) uri.password_ = TextRange{pos + password_colon + 1, at};
    if (uri.user_.begin == uri.user_.end) return SyntaxError(kWhat, t, "empty user before '@'");
    if (!AllUriChars(userinfo)) return SyntaxError(kWhat, t, "invalid character in userinfo");
    pos = at + 1;
  } else {
    uri.user_ = {pos, pos};
  }

  ASSIGN_OR_RETURN(uri.host_, ParseHost(t, pos, kWhat));
  pos = uri.host_.written.end;
  if (pos < t.size() && t[pos] == ':') {
    ASSIGN_OR_RETURN(uri.port_, ParsePortAt(t, pos + 1, &pos, kWhat));
  }
  uri.host_port_ = {uri.host_.written.begin, pos};

  while (pos < t.size() && t[pos] == ';') {
    ParamRange param;
    param.name = {pos + 1, SkipToken(t, pos + 1)};
    if (param.name.begin == param.name.end) {
      return SyntaxError(kWhat, t, absl::StrCat("expected a parameter name at offset ", pos + 1));
    }
    pos = param.name.end;
    param.value = {pos, pos};
    if (pos < t.size() && t[pos] == '=') {
      size_t value_end = pos + 1;
      while (value_end < t.size() && IsUriChar(t[value_end]) && t[value_end] != ';' && t[value_end] != '?') {
        ++value_end;
      }
      param.value = {pos + 1, value_end};
      pos = value_end;
    }
    uri.params_.push_back(param);
  }
  if (pos < t.size() && t[pos] == '?') {
    uri.headers_ = {pos + 1, t.size()};
    if (!AllUriChars(uri.headers_.In(t))) return SyntaxError(kWhat, t, "invalid character in headers");
    pos = t.size();
  }
  if (pos != t.size()) {
    return SyntaxError(kWhat, t, absl::StrCat("unexpected character at offset ", pos));
  }
  return uri;
}

std::optional<absl::string_view> SipUri::password() const {
  if (!password_.has_value()) return std::nullopt;
  return password_->In(text_);
}

uint16_t SipUri::EffectivePort() const {
  if (port_.has_value()) return *port_;
  return sips_ || absl::EqualsIgnoreCase(transport(), "tls") ? 5061 : 5060;
}

std::optional<absl::string_view> SipUri::Param(absl::string_view name) const {
  return FindParam(text_, params_, name);
}

absl::string_view SipUri::transport() const { return Param("transport").value_or(""); }

std::string SipUri::WithHostPort(const net::SocketAddress& address) const {
  absl::string_view t = text_;
  return absl::StrCat(t.substr(0, host_port_.begin), address.ToString(), t.substr(host_port_.end));
}

}  // namespace latchkey::sip
