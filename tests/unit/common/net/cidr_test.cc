#include "common/net/cidr.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::net {
namespace {

using ::testing::HasSubstr;

IpAddress Ip(const std::string& text) { return IpAddress::Parse(text).value(); }

Cidr MakeCidr(const std::string& text) {
  absl::StatusOr<Cidr> cidr = Cidr::Parse(text);
  EXPECT_TRUE(cidr.ok()) << text << ": " << cidr.status();
  return cidr.value_or(Cidr::Parse("0.0.0.0/32").value());
}

TEST(CidrTest, ParsesIpv4AndIpv6) {
  Cidr v4 = MakeCidr("10.0.0.0/8");
  EXPECT_EQ(v4.ToString(), "10.0.0.0/8");
  EXPECT_EQ(v4.prefix_length(), 8);
  EXPECT_TRUE(v4.Contains(Ip("10.200.3.4")));
  EXPECT_FALSE(v4.Contains(Ip("11.0.0.1")));

  Cidr v6 = MakeCidr("2001:db8::/32");
  EXPECT_EQ(v6.ToString(), "2001:db8::/32");
  EXPECT_TRUE(v6.Contains(Ip("2001:db8:ffff::1")));
  EXPECT_FALSE(v6.Contains(Ip("2001:db9::1")));
}

TEST(CidrTest, BareAddressIsAHostRoute) {
  Cidr v4 = MakeCidr("192.0.2.10");
  EXPECT_EQ(v4.ToString(), "192.0.2.10/32");
  EXPECT_TRUE(v4.Contains(Ip("192.0.2.10")));
  EXPECT_FALSE(v4.Contains(Ip("192.0.2.11")));
  Cidr v6 = MakeCidr("2001:db8::10");
  EXPECT_EQ(v6.ToString(), "2001:db8::10/128");
  EXPECT_TRUE(v6.Contains(Ip("2001:db8::10")));
  EXPECT_FALSE(v6.Contains(Ip("2001:db8::11")));
}

TEST(CidrTest, HostBitsAreMasked) {
  EXPECT_EQ(MakeCidr("10.1.2.3/8").ToString(), "10.0.0.0/8");
  EXPECT_EQ(MakeCidr("172.31.99.1/12").ToString(), "172.16.0.0/12");
  EXPECT_EQ(MakeCidr("2001:db8:abcd::1/35").ToString(), "2001:db8:a000::/35");
  EXPECT_TRUE(MakeCidr("10.1.2.3/8").Contains(Ip("10.9.9.9")));
}

TEST(CidrTest, PrefixBoundaries) {
  Cidr all_v4 = MakeCidr("0.0.0.0/0");
  EXPECT_TRUE(all_v4.Contains(Ip("203.0.113.7")));
  EXPECT_FALSE(all_v4.Contains(Ip("2001:db8::1")));
  Cidr all_v6 = MakeCidr("::/0");
  EXPECT_TRUE(all_v6.Contains(Ip("2001:db8::1")));
  EXPECT_FALSE(all_v6.Contains(Ip("203.0.113.7")));
  Cidr odd = MakeCidr("100.64.0.0/10");
  EXPECT_TRUE(odd.Contains(Ip("100.127.255.255")));
  EXPECT_FALSE(odd.Contains(Ip("100.128.0.0")));
  EXPECT_TRUE(MakeCidr("2001:db8::1/128").Contains(Ip("2001:db8::1")));
}

TEST(CidrTest, V4RangeMatchesV4MappedAddresses) {
  Cidr v4 = MakeCidr("192.168.0.0/16");
  EXPECT_TRUE(v4.Contains(Ip("::ffff:192.168.4.5")));
  EXPECT_FALSE(v4.Contains(Ip("::ffff:192.169.4.5")));
}

TEST(CidrTest, RejectsBadInput) {
  for (const char* text : {"", "/8", "10.0.0.0/", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/-1", "10.0.0.0/8/8",
                           "10.0.0.0/ 8", "10.0.0.0/0x8", "10.0.0/8", "example.com/24", "10.0.0.0/1000"}) {
    absl::StatusOr<Cidr> cidr = Cidr::Parse(text);
    EXPECT_FALSE(cidr.ok()) << "accepted \"" << text << "\"";
    EXPECT_EQ(cidr.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  EXPECT_THAT(Cidr::Parse("10.0.0.0/33").status().message(), HasSubstr("0-32"));
  EXPECT_THAT(Cidr::Parse("::/200").status().message(), HasSubstr("0-128"));
}

TEST(CidrSetTest, ContainsAnyMember) {
  google::protobuf::RepeatedPtrField<std::string> texts;
  texts.Add("10.0.0.0/8");
  texts.Add("2001:db8::/32");
  absl::StatusOr<CidrSet> set = CidrSet::Parse(texts, "trusted_cidrs");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_FALSE(set->empty());
  EXPECT_EQ(set->size(), 2u);
  EXPECT_TRUE(set->Contains(Ip("10.1.1.1")));
  EXPECT_TRUE(set->Contains(Ip("2001:db8::5")));
  EXPECT_FALSE(set->Contains(Ip("192.168.1.1")));
}

TEST(CidrSetTest, EmptySetContainsNothing) {
  absl::StatusOr<CidrSet> set = CidrSet::Parse(std::vector<std::string>{}, "x");
  ASSERT_TRUE(set.ok());
  EXPECT_TRUE(set->empty());
  EXPECT_FALSE(set->Contains(Ip("10.0.0.1")));
  EXPECT_TRUE(CidrSet().empty());
}

TEST(CidrSetTest, ErrorNamesFieldAndIndex) {
  google::protobuf::RepeatedPtrField<std::string> texts;
  texts.Add("10.0.0.0/8");
  texts.Add("172.16.0.0/12");
  texts.Add("192.168.0.0/40");
  absl::Status status = CidrSet::Parse(texts, "nat_policies[0].trusted_cidrs").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), ::testing::StartsWith("nat_policies[0].trusted_cidrs[2]: "));
  EXPECT_THAT(status.message(), HasSubstr("192.168.0.0/40"));

  std::vector<std::string> vector_texts = {"nonsense"};
  EXPECT_THAT(CidrSet::Parse(vector_texts, "media_cidrs").status().message(), HasSubstr("media_cidrs[0]: "));
}

}  // namespace
}  // namespace latchkey::net
