#pragma once
// Lexical pieces shared by the SIP parsers (RFC 3261 section 25): character classes, quoted strings,
// header-name prefixes, hosts and ";name=value" parameter lists. Parsers keep their input as one
// string and refer to parts of it by offset, so a parsed value can be copied and its parts
// re-emitted byte for byte.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/net/ip_address.h"

namespace latchkey::sip {

// [begin, end) of the owner's text. Offsets, not views, so copies of the owner stay valid.
struct TextRange {
  size_t begin = 0;
  size_t end = 0;

  absl::string_view In(absl::string_view text) const { return text.substr(begin, end - begin); }
};

// One ";name" or ";name=value" parameter.
struct ParamRange {
  TextRange name;
  TextRange value;  // empty for a flag parameter
};

// Value of the first parameter named `name` (case-insensitive): "" for a flag, nullopt if absent.
std::optional<absl::string_view> FindParam(absl::string_view text, const std::vector<ParamRange>& params,
                                           absl::string_view name);

// RFC 3261 token characters: alphanumerics and -.!%*_+`'~
bool IsTokenChar(char c);
// Space, tab, and the CR/LF of a folded header line.
bool IsSipSpace(char c);

// First index >= pos that is not whitespace (text.size() if none).
size_t SkipSpace(absl::string_view text, size_t pos);
// First index >= pos that is not a token character.
size_t SkipToken(absl::string_view text, size_t pos);
absl::string_view TrimSpace(absl::string_view text);

// `text` at a '"': the index just past the closing quote (backslash escapes honoured), or npos when
// the string is not terminated.
size_t SkipQuotedString(absl::string_view text, size_t pos);
// The content of a quoted string (without the quotes) with its backslash escapes resolved.
std::string UnquoteString(absl::string_view quoted);

// The first `target` outside quoted strings (and, if `skip_angle_brackets`, outside <...>); npos if
// none or if a quote is not terminated (the caller then fails on the quote anyway).
size_t FindUnquoted(absl::string_view text, char target, bool skip_angle_brackets);

// Drops an optional leading header name such as "Contact:" or its compact form "m:" (any case,
// whitespace allowed before the colon). Returns the rest, or `text` unchanged if there is none.
absl::string_view StripHeaderName(absl::string_view text, absl::string_view name, absl::string_view compact);

struct ParsedHost {
  TextRange written;  // as written, brackets included
  TextRange name;     // without brackets
  std::optional<net::IpAddress> ip;
};
// The host at `pos`: "[IPv6]", an IPv4 literal, or a host name (letters, digits, '-', '.', '_').
// Stops at the first character that cannot belong to it; `what` names the input in errors.
absl::StatusOr<ParsedHost> ParseHost(absl::string_view text, size_t pos, absl::string_view what);

// A run of digits at `pos` as a port 1-65535; `*end` gets the index after the digits.
absl::StatusOr<uint16_t> ParsePortAt(absl::string_view text, size_t pos, size_t* end, absl::string_view what);

// Header parameters after a Contact's '>' or a Via's sent-by: *( SWS ";" SWS token [ "=" gen-value ] )
// where gen-value is a token, a host (IPv6 too) or a quoted string (kept with its quotes). Whitespace
// may surround ';' and '='. Parses from `pos` to the end of `text`.
absl::StatusOr<std::vector<ParamRange>> ParseHeaderParams(absl::string_view text, size_t pos, absl::string_view what);

// INVALID_ARGUMENT: `<what> "<input>": <problem>`.
absl::Status SyntaxError(absl::string_view what, absl::string_view input, absl::string_view problem);

}  // namespace latchkey::sip
