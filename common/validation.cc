#include "common/validation.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/time/proto_time.h"

namespace latchkey {

std::string Excerpt(absl::string_view value, size_t max) {
  if (value.size() <= max) return absl::CHexEscape(value);
  return absl::StrCat(absl::CHexEscape(value.substr(0, max)), "... (", value.size(), " bytes)");
}

absl::Status CheckToken(absl::string_view field, absl::string_view value, size_t max_length, bool allow_spaces) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  return CheckOptionalText(field, value, max_length).ok() && (allow_spaces || value.find(' ') == value.npos)
             ? absl::OkStatus()
             : absl::InvalidArgumentError(
                   absl::StrCat(field, ": \"", Excerpt(value), "\" must be at most ", max_length,
                                " printable bytes", allow_spaces ? "" : " without spaces"));
}

absl::Status CheckOptionalText(absl::string_view field, absl::string_view value, size_t max_length) {
  bool printable = true;
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) printable = false;
  }
  if (value.size() > max_length || !printable) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": \"", Excerpt(value), "\" must be at most ", max_length,
                                                   " printable bytes"));
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Duration> CheckDuration(absl::string_view field, bool has, const google::protobuf::Duration& d,
                                             absl::Duration min, absl::Duration max) {
  if (!has) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  const absl::Duration value = FromProto(d);
  if (d.nanos() < 0 || d.nanos() >= 1000000000 || value < min || value > max) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", absl::FormatDuration(value), " is outside [",
                                                   absl::FormatDuration(min), ", ", absl::FormatDuration(max), "]"));
  }
  return value;
}

absl::Status CheckEnum(absl::string_view field, int value, bool (*is_valid)(int), bool allow_unspecified) {
  if (!is_valid(value)) return absl::InvalidArgumentError(absl::StrCat(field, ": unknown value ", value));
  if (value == 0 && !allow_unspecified) return absl::InvalidArgumentError(absl::StrCat(field, ": required"));
  return absl::OkStatus();
}

}  // namespace latchkey
