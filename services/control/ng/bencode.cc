#include "services/control/ng/bencode.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace latchkey::control::ng {

Value Value::Integer(int64_t v) {
  Value value;
  value.kind_ = Kind::kInteger;
  value.integer_ = v;
  return value;
}

Value Value::String(std::string v) {
  Value value;
  value.kind_ = Kind::kString;
  value.string_ = std::move(v);
  return value;
}

Value Value::List(std::vector<Value> items) {
  Value value;
  value.kind_ = Kind::kList;
  value.items_ = std::move(items);
  return value;
}

Value Value::Dictionary(std::vector<std::pair<std::string, Value>> entries) {
  Value value;
  value.kind_ = Kind::kDictionary;
  value.entries_ = std::move(entries);
  return value;
}

const Value* Value::Find(absl::string_view key) const {
  if (kind_ != Kind::kDictionary) return nullptr;
  for (const auto& [k, v] : entries_) {
    if (k == key) return &v;
  }
  return nullptr;
}

Value& Value::Add(Value item) {
  items_.push_back(std::move(item));
  return items_.back();
}

Value& Value::Set(std::string key, Value value) {
  for (auto& [k, v] : entries_) {
    if (k == key) {
      v = std::move(value);
      return v;
    }
  }
  entries_.emplace_back(std::move(key), std::move(value));
  return entries_.back().second;
}

bool operator==(const Value& a, const Value& b) {
  if (a.kind_ != b.kind_) return false;
  switch (a.kind_) {
    case Value::Kind::kInteger:
      return a.integer_ == b.integer_;
    case Value::Kind::kString:
      return a.string_ == b.string_;
    case Value::Kind::kList:
      return a.items_ == b.items_;
    case Value::Kind::kDictionary:
      return a.entries_ == b.entries_;
  }
  return false;
}

namespace {

class Decoder {
 public:
  Decoder(absl::string_view data, const DecodeLimits& limits) : data_(data), limits_(limits) {}

  absl::StatusOr<Value> Whole() {
    auto value = Next(0);
    if (!value.ok()) return value.status();
    if (at_ != data_.size()) return Error(absl::StrCat(data_.size() - at_, " bytes after the value"));
    return value;
  }

 private:
  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("bencode: at byte ", at_, ": ", what));
  }

  absl::StatusOr<Value> Next(int depth) {
    if (depth > limits_.max_depth) return Error(absl::StrCat("nested deeper than ", limits_.max_depth));
    if (++values_ > limits_.max_values) return Error(absl::StrCat("more than ", limits_.max_values, " values"));
    if (at_ >= data_.size()) return Error("truncated");
    const char c = data_[at_];
    if (c == 'i') return IntegerValue();
    if (c == 'l') {
      ++at_;
      Value list = Value::List();
      while (at_ < data_.size() && data_[at_] != 'e') {
        auto item = Next(depth + 1);
        if (!item.ok()) return item.status();
        list.Add(*std::move(item));
      }
      if (at_ >= data_.size()) return Error("list not terminated");
      ++at_;
      return list;
    }
    if (c == 'd') {
      ++at_;
      Value dictionary = Value::Dictionary();
      while (at_ < data_.size() && data_[at_] != 'e') {
        if (!absl::ascii_isdigit(static_cast<unsigned char>(data_[at_]))) return Error("dictionary key is not a string");
        const size_t key_at = at_;
        auto key = StringBytes();
        if (!key.ok()) return key.status();
        if (dictionary.Find(*key) != nullptr) {
          at_ = key_at;
          return Error(absl::StrCat("key \"", absl::CEscape(key->substr(0, 40)), "\" repeated"));
        }
        auto value = Next(depth + 1);
        if (!value.ok()) return value.status();
        dictionary.Set(*std::move(key), *std::move(value));
      }
      if (at_ >= data_.size()) return Error("dictionary not terminated");
      ++at_;
      return dictionary;
    }
    if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      auto bytes = StringBytes();
      if (!bytes.ok()) return bytes.status();
      return Value::String(*std::move(bytes));
    }
    return Error(absl::StrCat("unexpected '", absl::CEscape(absl::string_view(&c, 1)), "'"));
  }

  absl::StatusOr<Value> IntegerValue() {
    ++at_;  // 'i'
    const size_t start = at_;
    const bool negative = at_ < data_.size() && data_[at_] == '-';
    if (negative) ++at_;
    const size_t digits = at_;
    uint64_t magnitude = 0;
    while (at_ < data_.size() && absl::ascii_isdigit(static_cast<unsigned char>(data_[at_]))) {
      const uint64_t digit = static_cast<uint64_t>(data_[at_] - '0');
      if (magnitude > (uint64_t{1} << 63) / 10) return Error("integer out of range");
      magnitude = magnitude * 10 + digit;
      ++at_;
    }
    if (at_ == digits) return Error("integer without digits");
    if (at_ >= data_.size() || data_[at_] != 'e') return Error("integer not terminated");
    if (data_[digits] == '0' && at_ - digits > 1) return Error("integer with a leading zero");
    if (negative && magnitude == 0) return Error("negative zero");
    if (magnitude > (negative ? (uint64_t{1} << 63) : (uint64_t{1} << 63) - 1)) {
      at_ = start;
      return Error("integer out of range");
    }
    ++at_;  // 'e'
    const int64_t value = negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
    return Value::Integer(value);
  }

  absl::StatusOr<std::string> StringBytes() {
    const size_t digits = at_;
    uint64_t length = 0;
    while (at_ < data_.size() && absl::ascii_isdigit(static_cast<unsigned char>(data_[at_]))) {
      length = length * 10 + static_cast<uint64_t>(data_[at_] - '0');
      if (length > data_.size()) return Error("string longer than the message");
      ++at_;
    }
    if (at_ >= data_.size() || data_[at_] != ':') return Error("string length not followed by ':'");
    if (data_[digits] == '0' && at_ - digits > 1) return Error("string length with a leading zero");
    ++at_;  // ':'
    if (length > data_.size() - at_) return Error(absl::StrCat("string of ", length, " bytes is truncated"));
    std::string bytes(data_.substr(at_, length));
    at_ += length;
    return bytes;
  }

  const absl::string_view data_;
  const DecodeLimits limits_;
  size_t at_ = 0;
  size_t values_ = 0;
};

void EncodeTo(const Value& value, std::string* out) {
  switch (value.kind()) {
    case Value::Kind::kInteger:
      absl::StrAppend(out, "i", value.integer(), "e");
      return;
    case Value::Kind::kString:
      absl::StrAppend(out, value.string().size(), ":", value.string());
      return;
    case Value::Kind::kList:
      out->push_back('l');
      for (const Value& item : value.items()) EncodeTo(item, out);
      out->push_back('e');
      return;
    case Value::Kind::kDictionary:
      out->push_back('d');
      for (const auto& [key, item] : value.entries()) {
        absl::StrAppend(out, key.size(), ":", key);
        EncodeTo(item, out);
      }
      out->push_back('e');
      return;
  }
}

}  // namespace

absl::StatusOr<Value> Decode(absl::string_view data, const DecodeLimits& limits) {
  return Decoder(data, limits).Whole();
}

std::string Encode(const Value& value) {
  std::string out;
  EncodeTo(value, &out);
  return out;
}

}  // namespace latchkey::control::ng
