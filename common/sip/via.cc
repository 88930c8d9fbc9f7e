#include "common/sip/via.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace latchkey::sip {
namespace {

constexpr absl::string_view kWhat = "Via";

// Expects `separator` at `*pos` (whitespace around it allowed) and moves past it.
bool Consume(absl::string_view text, size_t* pos, char separator) {
  size_t at = SkipSpace(text, *pos);
  if (at >= text.size() || text[at] != separator) return false;
  *pos = SkipSpace(text, at + 1);
  return true;
}

}  // namespace

absl::StatusOr<Via> Via::Parse(absl::string_view input) {
  absl::string_view value = TrimSpace(StripHeaderName(input, "via", "v"));
  value = TrimSpace(value.substr(0, FindUnquoted(value, ',', /*skip_angle_brackets=*/false)));
  if (value.empty()) return SyntaxError(kWhat, input, "empty value");

  Via via;
  via.text_ = std::string(value);
  absl::string_view t = via.text_;
  size_t pos = 0;

  // "SIP / 2.0 / UDP" (LWS allowed around '/'), or straight to the sent-by. A host name cannot be
  // followed by '/', so a '/' after the first token means the full form.
  size_t name_end = SkipToken(t, 0);
  if (size_t slash = name_end; Consume(t, &slash, '/')) {
    if (!absl::EqualsIgnoreCase(t.substr(0, name_end), "SIP")) {
      return SyntaxError(kWhat, t, "protocol must be SIP");
    }
    size_t version_end = SkipToken(t, slash);
    if (version_end == slash) return SyntaxError(kWhat, t, "missing protocol version");
    pos = version_end;
    if (!Consume(t, &pos, '/')) return SyntaxError(kWhat, t, "expected '/' before the transport");
    size_t transport_end = SkipToken(t, pos);
    if (transport_end == pos) return SyntaxError(kWhat, t, "missing transport");
    via.transport_ = absl::AsciiStrToUpper(t.substr(pos, transport_end - pos));
    pos = SkipSpace(t, transport_end);
    if (pos == transport_end) return SyntaxError(kWhat, t, "expected whitespace before the sent-by");
  }

  ASSIGN_OR_RETURN(via.host_, ParseHost(t, pos, kWhat));
  pos = via.host_.written.end;
  if (size_t colon = pos; Consume(t, &colon, ':')) {
    ASSIGN_OR_RETURN(via.port_, ParsePortAt(t, colon, &pos, kWhat));
  }
  ASSIGN_OR_RETURN(via.params_, ParseHeaderParams(t, pos, kWhat));
  return via;
}

uint16_t Via::EffectivePort() const {
  if (port_.has_value()) return *port_;
  return transport_ == "TLS" ? 5061 : 5060;
}

std::optional<absl::string_view> Via::Param(absl::string_view name) const {
  return FindParam(text_, params_, name);
}

}  // namespace latchkey::sip
