#include "common/sip/syntax.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/net/quote_for_error.h"
#include "common/net/socket_address.h"

namespace latchkey::sip {
namespace {

bool IsHostNameChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_'; }

// A generic parameter value that is not quoted: a token or a host, which adds IPv6 ':' and '[]'.
bool IsGenValueChar(char c) { return IsTokenChar(c) || c == ':' || c == '[' || c == ']'; }

}  // namespace

absl::Status SyntaxError(absl::string_view what, absl::string_view input, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(what, " ", net::QuoteForError(input), ": ", problem));
}

std::optional<absl::string_view> FindParam(absl::string_view text, const std::vector<ParamRange>& params,
                                           absl::string_view name) {
  for (const ParamRange& param : params) {
    if (absl::EqualsIgnoreCase(param.name.In(text), name)) return param.value.In(text);
  }
  return std::nullopt;
}

bool IsTokenChar(char c) {
  if (absl::ascii_isalnum(static_cast<unsigned char>(c))) return true;
  switch (c) {
    case '-': case '.': case '!': case '%': case '*': case '_': case '+': case '`': case '\'': case '~':
      return true;
    default:
      return false;
  }
}

bool IsSipSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

size_t SkipSpace(absl::string_view text, size_t pos) {
  while (pos < text.size() && IsSipSpace(text[pos])) ++pos;
  return pos;
}

size_t SkipToken(absl::string_view text, size_t pos) {
  while (pos < text.size() && IsTokenChar(text[pos])) ++pos;
  return pos;
}

absl::string_view TrimSpace(absl::string_view text) {
  size_t begin = SkipSpace(text, 0);
  size_t end = text.size();
  while (end > begin && IsSipSpace(text[end - 1])) --end;
  return text.substr(begin, end - begin);
}

size_t SkipQuotedString(absl::string_view text, size_t pos) {
  for (size_t i = pos + 1; i < text.size(); ++i) {
    if (text[i] == '\\') {
      ++i;  // the escaped character, whatever it is
    } else if (text[i] == '"') {
      return i + 1;
    }
  }
  return absl::string_view::npos;
}

std::string UnquoteString(absl::string_view quoted) {
  std::string out;
  if (quoted.size() < 2) return out;
  absl::string_view inner = quoted.substr(1, quoted.size() - 2);
  out.reserve(inner.size());
  for (size_t i = 0; i < inner.size(); ++i) {
    if (inner[i] == '\\' && i + 1 < inner.size()) ++i;
    out.push_back(inner[i]);
  }
  return out;
}

size_t FindUnquoted(absl::string_view text, char target, bool skip_angle_brackets) {
  bool in_angle = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"' && !in_angle) {
      i = SkipQuotedString(text, i);
      if (i == absl::string_view::npos) return absl::string_view::npos;
      --i;  // the loop's ++i moves past the closing quote
      continue;
    }
    if (c == target && !in_angle) return i;
    if (skip_angle_brackets && c == '<') in_angle = true;
    if (skip_angle_brackets && c == '>') in_angle = false;
  }
  return absl::string_view::npos;
}

absl::string_view StripHeaderName(absl::string_view text, absl::string_view name, absl::string_view compact) {
  size_t begin = SkipSpace(text, 0);
  size_t word_end = SkipToken(text, begin);
  absl::string_view word = text.substr(begin, word_end - begin);
  if (!absl::EqualsIgnoreCase(word, name) && !absl::EqualsIgnoreCase(word, compact)) return text;
  size_t colon = SkipSpace(text, word_end);
  if (colon >= text.size() || text[colon] != ':') return text;
  return text.substr(colon + 1);
}

absl::StatusOr<ParsedHost> ParseHost(absl::string_view text, size_t pos, absl::string_view what) {
  ParsedHost host;
  host.written.begin = pos;
  if (pos < text.size() && text[pos] == '[') {
    size_t close = text.find(']', pos);
    if (close == absl::string_view::npos) return SyntaxError(what, text, "IPv6 host has no closing ']'");
    absl::StatusOr<net::IpAddress> ip = net::IpAddress::Parse(text.substr(pos + 1, close - pos - 1));
    if (!ip.ok() || !ip->is_v6()) return SyntaxError(what, text, "bracketed host is not an IPv6 address");
    host.written.end = close + 1;
    host.name = {pos + 1, close};
    host.ip = *ip;
    return host;
  }
  size_t end = pos;
  bool digits_and_dots = true;
  while (end < text.size() && IsHostNameChar(text[end])) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(text[end])) && text[end] != '.') digits_and_dots = false;
    ++end;
  }
  if (end == pos) return SyntaxError(what, text, "missing host");
  host.written = {pos, end};
  host.name = {pos, end};
  // A host name's last label starts with a letter (RFC 3261 toplabel), so digits and dots only
  // must be an IPv4 address: "300.1.1.1" is an error, not a name.
  if (digits_and_dots) {
    absl::StatusOr<net::IpAddress> ip = net::IpAddress::Parse(text.substr(pos, end - pos));
    if (!ip.ok()) return SyntaxError(what, text, absl::StrCat("host ", ip.status().message()));
    host.ip = *ip;
  }
  return host;
}

absl::StatusOr<uint16_t> ParsePortAt(absl::string_view text, size_t pos, size_t* end, absl::string_view what) {
  size_t digits_end = pos;
  while (digits_end < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[digits_end]))) {
    ++digits_end;
  }
  absl::StatusOr<uint16_t> port = net::ParsePort(text.substr(pos, digits_end - pos));
  if (!port.ok()) return SyntaxError(what, text, port.status().message());
  *end = digits_end;
  return *port;
}

absl::StatusOr<std::vector<ParamRange>> ParseHeaderParams(absl::string_view text, size_t pos, absl::string_view what) {
  std::vector<ParamRange> params;
  while (true) {
    pos = SkipSpace(text, pos);
    if (pos == text.size()) return params;
    if (text[pos] != ';') {
      return SyntaxError(what, text, absl::StrCat("expected ';' at offset ", pos));
    }
    pos = SkipSpace(text, pos + 1);
    ParamRange param;
    param.name = {pos, SkipToken(text, pos)};
    if (param.name.begin == param.name.end) {
      return SyntaxError(what, text, absl::StrCat("expected a parameter name at offset ", pos));
    }
    pos = SkipSpace(text, param.name.end);
    if (pos < text.size() && text[pos] == '=') {
      pos = SkipSpace(text, pos + 1);
      size_t value_end = pos;
      if (pos < text.size() && text[pos] == '"') {
        value_end = SkipQuotedString(text, pos);
        if (value_end == absl::string_view::npos) {
          return SyntaxError(what, text, absl::StrCat("unterminated quoted value at offset ", pos));
        }
      } else {
        while (value_end < text.size() && IsGenValueChar(text[value_end])) ++value_end;
        if (value_end == pos) {
          return SyntaxError(what, text, absl::StrCat("expected a parameter value at offset ", pos));
        }
      }
      param.value = {pos, value_end};
      pos = value_end;
    } else {
      param.value = {param.name.end, param.name.end};
    }
    params.push_back(param);
  }
}

}  // namespace latchkey::sip
