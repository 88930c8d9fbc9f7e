#include "common/log/log.h"

#include <atomic>
#include <cstdio>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace latchkey::log {
namespace {

std::atomic<int> min_level{static_cast<int>(Level::kInfo)};

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarning: return "warning";
    case Level::kError: return "error";
  }
  return "info";
}

// Quotes a value when logfmt needs it: spaces, quotes, '=' or empty.
void AppendValue(std::string* out, absl::string_view value) {
  bool needs_quotes = value.empty();
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      needs_quotes = true;
      break;
    }
  }
  if (!needs_quotes) {
    out->append(value.data(), value.size());
    return;
  }
  out->push_back('"');
  for (char c : value) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(out, "\\x", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

}  // namespace

void SetMinLevel(Level level) { min_level.store(static_cast<int>(level), std::memory_order_relaxed); }

bool Enabled(Level level) { return static_cast<int>(level) >= min_level.load(std::memory_order_relaxed); }

bool ParseLevel(absl::string_view text, Level* level) {
  for (Level candidate : {Level::kDebug, Level::kInfo, Level::kWarning, Level::kError}) {
    if (text == LevelName(candidate)) {
      *level = candidate;
      return true;
    }
  }
  return false;
}

Line::Line(Level level, absl::string_view msg) : enabled_(Enabled(level)) {
  if (!enabled_) return;
  text_.reserve(160);
  absl::StrAppend(&text_, "ts=", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone()),
                  " level=", LevelName(level), " msg=");
  AppendValue(&text_, msg);
}

Line& Line::Kv(absl::string_view key, absl::string_view value) {
  if (!enabled_) return *this;
  absl::StrAppend(&text_, " ", key, "=");
  AppendValue(&text_, value);
  return *this;
}

Line::~Line() {
  if (!enabled_) return;
  text_.push_back('\n');
  // One fwrite per line keeps lines whole when threads log at once.
  std::fwrite(text_.data(), 1, text_.size(), stderr);
}

}  // namespace latchkey::log
