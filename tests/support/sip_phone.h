#pragma once
// How a phone answers a SIP request, for tests that play the phone (RFC 3261 section 8.2.6.2: the
// response copies Via, From, Call-ID and CSeq, and To with a tag added).
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace latchkey::testing {

// The header lines of a message, the start line first, without the final empty line.
inline std::vector<std::string> SipLines(absl::string_view message) {
  if (absl::EndsWith(message, "\r\n\r\n")) message.remove_suffix(4);
  return absl::StrSplit(message, "\r\n");
}

inline std::string AnswerLikeAPhone(absl::string_view request, absl::string_view status_line,
                                    absl::string_view extra_headers = "") {
  std::string response = absl::StrCat(status_line, "\r\n");
  for (const std::string& line : SipLines(request)) {
    if (absl::StartsWith(line, "Via:") || absl::StartsWith(line, "From:") || absl::StartsWith(line, "Call-ID:") ||
        absl::StartsWith(line, "CSeq:")) {
      absl::StrAppend(&response, line, "\r\n");
    } else if (absl::StartsWith(line, "To:")) {
      absl::StrAppend(&response, line, ";tag=as5f2\r\n");
    }
  }
  absl::StrAppend(&response, extra_headers, "Content-Length: 0\r\n\r\n");
  return response;
}

}  // namespace latchkey::testing
