#pragma once
// One structured line per event, logfmt: `ts=... level=info msg="..." key=value ...`.
// Usage: LogInfo("binding created").Kv("aor", aor).Kv("nat", true);  (written when the temporary dies)
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace latchkey::log {

enum class Level { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Lines below this level are dropped. Default kInfo.
void SetMinLevel(Level level);
bool Enabled(Level level);
// Parses "debug", "info", "warning", "error".
bool ParseLevel(absl::string_view text, Level* level);

class Line {
 public:
  Line(Level level, absl::string_view msg);
  ~Line();
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;

  Line& Kv(absl::string_view key, absl::string_view value);
  Line& Kv(absl::string_view key, const std::string& value) { return Kv(key, absl::string_view(value)); }
  Line& Kv(absl::string_view key, const char* value) { return Kv(key, absl::string_view(value)); }
  Line& Kv(absl::string_view key, bool value) { return Kv(key, value ? "true" : "false"); }
  template <typename Number, typename = std::enable_if_t<std::is_arithmetic_v<Number>>>
  Line& Kv(absl::string_view key, Number value) {
    if (enabled_) absl::StrAppend(&text_, " ", key, "=", value);
    return *this;
  }

 private:
  bool enabled_;
  std::string text_;
};

inline Line LogDebug(absl::string_view msg) { return Line(Level::kDebug, msg); }
inline Line LogInfo(absl::string_view msg) { return Line(Level::kInfo, msg); }
inline Line LogWarning(absl::string_view msg) { return Line(Level::kWarning, msg); }
inline Line LogError(absl::string_view msg) { return Line(Level::kError, msg); }

}  // namespace latchkey::log
