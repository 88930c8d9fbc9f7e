#include "services/latchkeyctl/format.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/strings/string_view.h"
#include "common/time/proto_time.h"

namespace latchkey::ctl {

std::string EnumName(const google::protobuf::EnumDescriptor* descriptor, int value) {
  const google::protobuf::EnumValueDescriptor* found = descriptor->FindValueByNumber(value);
  if (found == nullptr) return absl::StrCat("unknown(", value, ")");
  // The prefix is whatever precedes "UNSPECIFIED" in the zero value: NAT_REASON_UNSPECIFIED -> NAT_REASON_.
  absl::string_view prefix;
  if (const google::protobuf::EnumValueDescriptor* zero = descriptor->FindValueByNumber(0); zero != nullptr) {
    absl::string_view zero_name = zero->name();
    if (absl::ConsumeSuffix(&zero_name, "UNSPECIFIED")) prefix = zero_name;
  }
  absl::string_view name = found->name();
  if (name.size() > prefix.size()) absl::ConsumePrefix(&name, prefix);
  return absl::AsciiStrToLower(name);
}

namespace {

// Seconds, the unit of SIP Expires and of protobuf JSON: "30s", "3600s", "0.4s".
std::string Seconds(absl::Duration d) {
  if (d == absl::InfiniteDuration()) return "inf";
  if (absl::Trunc(d, absl::Seconds(1)) == d) return absl::StrCat(absl::ToInt64Seconds(d), "s");
  return absl::StrCat(absl::ToDoubleSeconds(d), "s");
}

}  // namespace

std::string FormatDuration(const google::protobuf::Duration& duration, bool has) {
  if (!has) return "-";
  return Seconds(FromProto(duration));
}

std::string FormatTime(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  const char* format = time.nanos() == 0 ? "%Y-%m-%d%ET%H:%M:%SZ" : "%Y-%m-%d%ET%H:%M:%E3SZ";
  return absl::FormatTime(format, FromProto(time), absl::UTCTimeZone());
}

std::string FormatAge(const google::protobuf::Timestamp& time, absl::Time now) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  const absl::Duration age = std::max(absl::ZeroDuration(), absl::Trunc(now - FromProto(time), absl::Milliseconds(100)));
  return absl::StrCat(Seconds(age), " ago");
}

std::string FormatAddress(const v1::SocketAddress& address) {
  if (address.ip().empty() && address.port() == 0) return "-";
  if (absl::StrContains(address.ip(), ':')) return absl::StrCat("[", address.ip(), "]:", address.port());
  return absl::StrCat(address.ip(), ":", address.port());
}

std::string Table::Render() const {
  std::vector<size_t> widths(header_.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  };
  measure(header_);
  for (const auto& row : rows_) measure(row);
  std::string out;
  auto render = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      absl::StrAppend(&line, cell);
      if (i + 1 < widths.size()) line.append(widths[i] - cell.size() + 2, ' ');
    }
    absl::StripTrailingAsciiWhitespace(&line);
    absl::StrAppend(&out, line, "\n");
  };
  render(header_);
  for (const auto& row : rows_) render(row);
  return out;
}

std::string Block::Render() const {
  size_t width = 0;
  for (const Line& line : lines_) {
    if (!line.section) width = std::max(width, 2 * static_cast<size_t>(line.indent) + line.key.size() + 1);
  }
  std::string out;
  for (const Line& line : lines_) {
    std::string text(2 * static_cast<size_t>(line.indent), ' ');
    absl::StrAppend(&text, line.key, ":");
    if (!line.section) {
      text.append(width - text.size() + 1, ' ');
      absl::StrAppend(&text, line.value);
    }
    absl::StripTrailingAsciiWhitespace(&text);
    absl::StrAppend(&out, text, "\n");
  }
  return out;
}

}  // namespace latchkey::ctl
