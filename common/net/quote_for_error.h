#pragma once
// Error messages quote the offending input. It comes from the network or a config file, so it is
// C-escaped (no control bytes in logs) and clipped (a 64 KB datagram must not become a 64 KB error).
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace latchkey::net {

inline std::string QuoteForError(absl::string_view text) {
  constexpr size_t kMaxShown = 80;
  if (text.size() <= kMaxShown) return absl::StrCat("\"", absl::CHexEscape(text), "\"");
  return absl::StrCat("\"", absl::CHexEscape(text.substr(0, kMaxShown)), "...\"");
}

}  // namespace latchkey::net
