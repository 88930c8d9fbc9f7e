#pragma once
// Text building blocks of the human-readable output: aligned tables, "key: value" blocks, and the
// short forms of enums, durations, timestamps and addresses used everywhere.
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/generated_enum_reflection.h"
#include "google/protobuf/timestamp.pb.h"
#include "latchkey/v1/types.pb.h"

namespace latchkey::ctl {

// An enum value without its type prefix, in lower case: NAT_REASON_CONTACT_PRIVATE -> "contact_private".
// A number the enum does not define prints as "unknown(N)".
std::string EnumName(const google::protobuf::EnumDescriptor* descriptor, int value);
template <typename Enum>
std::string EnumName(Enum value) {
  return EnumName(google::protobuf::GetEnumDescriptor<Enum>(), static_cast<int>(value));
}

// In seconds, as SIP and protobuf JSON write them: "30s", "3600s", "0.25s"; "-" when unset.
std::string FormatDuration(const google::protobuf::Duration& duration, bool has = true);
// RFC 3339 in UTC, "2024-05-01T12:00:00Z" (with milliseconds when not whole seconds); "-" when unset.
std::string FormatTime(const google::protobuf::Timestamp& time);
// How long before `now` it was, to 0.1 s: "0.4s ago"; "-" when unset.
std::string FormatAge(const google::protobuf::Timestamp& time, absl::Time now);
// "1.2.3.4:5060", "[2001:db8::1]:5060"; "-" when empty.
std::string FormatAddress(const v1::SocketAddress& address);
// A plain yes/no.
inline std::string YesNo(bool value) { return value ? "yes" : "no"; }

// Columns padded to their widest cell, separated by two spaces; the last column is not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

// "key: value" lines with the values aligned; Section() opens an indented group.
class Block {
 public:
  void Add(const std::string& key, const std::string& value) { lines_.push_back({indent_, key, value, false}); }
  void Section(const std::string& key) {
    lines_.push_back({indent_, key, "", true});
    ++indent_;
  }
  void EndSection() {
    if (indent_ > 0) --indent_;
  }
  std::string Render() const;

 private:
  struct Line {
    int indent;
    std::string key;
    std::string value;
    bool section;
  };
  std::vector<Line> lines_;
  int indent_ = 0;
};

}  // namespace latchkey::ctl
