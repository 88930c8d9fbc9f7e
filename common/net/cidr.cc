#include "common/net/cidr.h"

#include <algorithm>
#include <array>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/net/quote_for_error.h"

namespace latchkey::net {
namespace {

// Whether the first `bits` bits of `a` and `b` (same length) are equal.
bool PrefixEqual(absl::Span<const uint8_t> a, absl::Span<const uint8_t> b, int bits) {
  size_t full_bytes = static_cast<size_t>(bits / 8);
  for (size_t i = 0; i < full_bytes; ++i) {
    if (a[i] != b[i]) return false;
  }
  int rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full_bytes] & mask) == (b[full_bytes] & mask);
}

IpAddress ClearHostBits(const IpAddress& address, int prefix_length) {
  absl::Span<const uint8_t> bytes = address.bytes();
  std::array<uint8_t, 16> masked{};
  for (size_t i = 0; i < bytes.size(); ++i) {
    int bits_kept = std::min(8, std::max(0, prefix_length - static_cast<int>(i) * 8));
    uint8_t mask = bits_kept == 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits_kept));
    masked[i] = bytes[i] & mask;
  }
  if (address.is_v4()) return IpAddress::V4(masked[0], masked[1], masked[2], masked[3]);
  in6_addr v6;
  std::copy(masked.begin(), masked.end(), v6.s6_addr);
  return IpAddress::FromV6(v6);
}

}  // namespace

absl::StatusOr<Cidr> Cidr::Parse(absl::string_view text) {
  size_t slash = text.find('/');
  absl::StatusOr<IpAddress> address = IpAddress::Parse(text.substr(0, slash));
  if (!address.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(QuoteForError(text), " is not a CIDR: ", address.status().message()));
  }
  int max_length = address->is_v4() ? 32 : 128;
  if (slash == absl::string_view::npos) return Cidr(*address, max_length);

  absl::string_view length_text = text.substr(slash + 1);
  int length = 0;
  bool valid = !length_text.empty() && length_text.size() <= 3;
  for (char c : length_text) {
    if (c < '0' || c > '9') {
      valid = false;
      break;
    }
    length = length * 10 + (c - '0');
  }
  if (!valid || length > max_length) {
    return absl::InvalidArgumentError(absl::StrCat(QuoteForError(text), " is not a CIDR: prefix length must be 0-",
                                                   max_length));
  }
  return Cidr(ClearHostBits(*address, length), length);
}

bool Cidr::Contains(const IpAddress& address) const {
  const IpAddress candidate = network_.is_v4() ? address.Unmapped() : address;
  if (candidate.family() != network_.family()) return false;
  return PrefixEqual(candidate.bytes(), network_.bytes(), prefix_length_);
}

std::string Cidr::ToString() const { return absl::StrCat(network_.ToString(), "/", prefix_length_); }

template <typename Texts>
absl::StatusOr<CidrSet> CidrSet::ParseAll(const Texts& texts, absl::string_view field_name) {
  CidrSet set;
  set.cidrs_.reserve(texts.size());
  int index = 0;
  for (const std::string& text : texts) {
    absl::StatusOr<Cidr> cidr = Cidr::Parse(text);
    if (!cidr.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field_name, "[", index, "]: ", cidr.status().message()));
    }
    set.cidrs_.push_back(*cidr);
    ++index;
  }
  return set;
}

absl::StatusOr<CidrSet> CidrSet::Parse(const google::protobuf::RepeatedPtrField<std::string>& texts,
                                       absl::string_view field_name) {
  return ParseAll(texts, field_name);
}

absl::StatusOr<CidrSet> CidrSet::Parse(const std::vector<std::string>& texts, absl::string_view field_name) {
  return ParseAll(texts, field_name);
}

bool CidrSet::Contains(const IpAddress& address) const {
  for (const Cidr& cidr : cidrs_) {
    if (cidr.Contains(address)) return true;
  }
  return false;
}

}  // namespace latchkey::net
