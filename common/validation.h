#pragma once
// Field checks shared by every RPC: each error is INVALID_ARGUMENT and names the field and the value.
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"

namespace latchkey {

// Non-empty, at most `max_length` bytes, printable (no control characters, no spaces unless allowed).
absl::Status CheckToken(absl::string_view field, absl::string_view value, size_t max_length,
                        bool allow_spaces = false);
// Empty is fine; otherwise as CheckToken.
absl::Status CheckOptionalText(absl::string_view field, absl::string_view value, size_t max_length);
// A set duration within [min, max].
absl::StatusOr<absl::Duration> CheckDuration(absl::string_view field, bool has, const google::protobuf::Duration& d,
                                             absl::Duration min, absl::Duration max);
// An enum value that is defined and not *_UNSPECIFIED (0) unless `allow_unspecified`.
absl::Status CheckEnum(absl::string_view field, int value, bool (*is_valid)(int), bool allow_unspecified);

// Shortens a value quoted in an error message so a huge field cannot flood logs.
std::string Excerpt(absl::string_view value, size_t max = 80);

}  // namespace latchkey
