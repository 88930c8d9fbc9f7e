// Parses arbitrary bytes as a Via header value (or a bare sent-by); whatever parses must parse again
// from its own text() to the same transport, sent-by and parameters: text() is what we log and may
// hand on, so it has to mean what the input meant.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/sip/via.h"

namespace sip = latchkey::sip;

namespace {

void Check(bool condition, const char* what, absl::string_view input) {
  if (condition) return;
  std::fprintf(stderr, "property violated: %s\ninput: %.*s\n", what, static_cast<int>(input.size()), input.data());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<sip::Via> via = sip::Via::Parse(text);
  if (!via.ok()) return 0;

  Check(via->host_is_ip() == via->ip().has_value(), "host_is_ip inconsistent", text);
  Check(!via->port().has_value() || via->EffectivePort() == *via->port(), "EffectivePort ignores the port", text);
  (void)via->has_rport();
  (void)via->Param("received");

  // With the header name in front: a bare sent-by whose host is literally "v" or "via" reads as a
  // header name otherwise (documented in via.h).
  const std::string line = absl::StrCat("Via: ", via->text());
  const absl::StatusOr<sip::Via> again = sip::Via::Parse(line);
  Check(again.ok(), "text() does not parse again", line);
  Check(again->transport() == via->transport() && again->host() == via->host() && again->port() == via->port(),
        "sent-by changed", line);
  Check(again->Param("branch") == via->Param("branch") && again->has_rport() == via->has_rport(),
        "params changed", line);
  return 0;
}
