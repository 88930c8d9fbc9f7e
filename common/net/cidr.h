#pragma once
// Address ranges from configuration ("10.0.0.0/8", "2001:db8::/32") and ordered lists of them.
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/net/ip_address.h"
#include "google/protobuf/repeated_field.h"

namespace latchkey::net {

class Cidr {
 public:
  // "10.0.0.0/8", "2001:db8::/32"; a bare address is /32 or /128. Host bits are accepted and
  // cleared ("10.1.2.3/8" is 10.0.0.0/8): operators often paste an interface address with its mask.
  static absl::StatusOr<Cidr> Parse(absl::string_view text);

  // A v4 range also matches the v4-mapped form of its addresses (dual-stack sockets report IPv4
  // peers that way); a v6 range never matches a plain IPv4 address.
  bool Contains(const IpAddress& address) const;

  const IpAddress& network() const { return network_; }
  int prefix_length() const { return prefix_length_; }
  // "10.0.0.0/8", "2001:db8::/32".
  std::string ToString() const;

  friend bool operator==(const Cidr& a, const Cidr& b) {
    return a.network_ == b.network_ && a.prefix_length_ == b.prefix_length_;
  }

 private:
  Cidr(const IpAddress& network, int prefix_length) : network_(network), prefix_length_(prefix_length) {}

  IpAddress network_;  // host bits cleared
  int prefix_length_;
};

// Any number of ranges; Contains is a linear scan (config lists are short).
class CidrSet {
 public:
  CidrSet() = default;

  // Errors name the entry: `nat_policies[0].trusted_cidrs[2]: "10.0.0.0/40": ...` for field_name
  // "nat_policies[0].trusted_cidrs".
  static absl::StatusOr<CidrSet> Parse(const google::protobuf::RepeatedPtrField<std::string>& texts,
                                       absl::string_view field_name);
  static absl::StatusOr<CidrSet> Parse(const std::vector<std::string>& texts, absl::string_view field_name);

  bool Contains(const IpAddress& address) const;
  bool empty() const { return cidrs_.empty(); }
  size_t size() const { return cidrs_.size(); }
  const std::vector<Cidr>& cidrs() const { return cidrs_; }

 private:
  template <typename Texts>
  static absl::StatusOr<CidrSet> ParseAll(const Texts& texts, absl::string_view field_name);

  std::vector<Cidr> cidrs_;
};

}  // namespace latchkey::net
