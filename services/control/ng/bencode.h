#pragma once
// Bencode, as rtpengine's ng protocol carries it (one dictionary per UDP datagram): integers, byte
// strings, lists and dictionaries. Parse once into a Value that keeps the dictionary's key order
// (Kamailio sends keys in insertion order, `command` last); every error names the byte offset.
//
// Rules: the input is one complete value with nothing after it; integers are decimal without
// leading zeros (but "0"), "-0" is refused; string lengths are decimal and must fit in what is left;
// a dictionary's keys are strings, a repeated key is refused (a request that says two things about
// one key is not guessed at). Limits bound what one datagram can cost: nesting depth and the number
// of values (both refused past the limit), besides the datagram's own size.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace latchkey::control::ng {

class Value {
 public:
  enum class Kind { kInteger, kString, kList, kDictionary };

  static Value Integer(int64_t v);
  static Value String(std::string v);
  static Value List(std::vector<Value> items = {});
  static Value Dictionary(std::vector<std::pair<std::string, Value>> entries = {});

  Kind kind() const { return kind_; }
  bool is_integer() const { return kind_ == Kind::kInteger; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dictionary() const { return kind_ == Kind::kDictionary; }

  int64_t integer() const { return integer_; }
  const std::string& string() const { return string_; }
  const std::vector<Value>& items() const { return items_; }
  const std::vector<std::pair<std::string, Value>>& entries() const { return entries_; }

  // Dictionary lookup; null when absent (or not a dictionary).
  const Value* Find(absl::string_view key) const;
  // Builders.
  Value& Add(Value item);                           // to a list
  Value& Set(std::string key, Value value);          // to a dictionary: replaces, else appends

  friend bool operator==(const Value& a, const Value& b);

 private:
  Kind kind_ = Kind::kString;
  int64_t integer_ = 0;
  std::string string_;
  std::vector<Value> items_;
  std::vector<std::pair<std::string, Value>> entries_;
};

struct DecodeLimits {
  int max_depth = 16;
  size_t max_values = 4096;
};

absl::StatusOr<Value> Decode(absl::string_view data, const DecodeLimits& limits = {});
std::string Encode(const Value& value);

}  // namespace latchkey::control::ng
