// Parses arbitrary bytes as a SIP response datagram, as a keepalive sender reads whatever comes back
// to its socket. Properties: no out-of-bounds read (ASan in the fuzz preset); an error is
// INVALID_ARGUMENT; a summary's views lie inside the input and hold what ParseResponse promises
// (status 100-699, a non-empty branch, a Call-ID word, a method token); and parsing is decided by
// the header section alone, so anything appended after it changes nothing.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/sip/options.h"
#include "common/sip/syntax.h"

namespace sip = latchkey::sip;

namespace {

void Check(bool condition, const char* what, absl::string_view input) {
  if (condition) return;
  std::fprintf(stderr, "property violated: %s\ninput: %.*s\n", what, static_cast<int>(input.size()), input.data());
  std::abort();
}

bool Within(absl::string_view outer, absl::string_view inner) {
  return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<sip::ResponseSummary> summary = sip::ParseResponse(text);
  if (!summary.ok()) {
    Check(summary.status().code() == absl::StatusCode::kInvalidArgument, "error is not INVALID_ARGUMENT", text);
    Check(!summary.status().message().empty(), "error without a message", text);
    return 0;
  }

  Check(summary->status_code >= 100 && summary->status_code <= 699, "status code out of range", text);
  Check(!summary->branch.empty() && Within(text, summary->branch), "branch not a non-empty view of the input", text);
  Check(!summary->call_id.empty() && Within(text, summary->call_id), "Call-ID not a non-empty view of the input", text);
  for (char c : summary->call_id) Check(c > ' ' && c < 0x7f, "Call-ID holds a space or control byte", text);
  Check(!summary->cseq_method.empty() && Within(text, summary->cseq_method), "method not a view of the input", text);
  for (char c : summary->cseq_method) Check(sip::IsTokenChar(c), "method is not a token", text);

  // A body (anything after the empty line) is ignored.
  const std::string with_body = absl::StrCat(text, "v=0\r\nVia: x\r\n\r\n");
  const absl::StatusOr<sip::ResponseSummary> again = sip::ParseResponse(with_body);
  Check(again.ok(), "appending a body broke parsing", with_body);
  Check(again->status_code == summary->status_code && again->branch == summary->branch &&
            again->call_id == summary->call_id && again->cseq == summary->cseq &&
            again->cseq_method == summary->cseq_method,
        "appending a body changed the summary", with_body);
  return 0;
}
