#pragma once
// List pagination: the token is the last store key of the previous page, opaque to clients.
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/validation.h"

namespace latchkey::control {

inline std::string EncodePageToken(absl::string_view last_key) { return absl::WebSafeBase64Escape(last_key); }

// The key to continue after; "" for the first page. INVALID_ARGUMENT names page_token.
inline absl::StatusOr<std::string> DecodePageToken(const std::string& token) {
  std::string key;
  if (!token.empty() && !absl::WebSafeBase64Unescape(token, &key)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: \"", Excerpt(token), "\" is not a token from a previous page"));
  }
  return key;
}

}  // namespace latchkey::control
