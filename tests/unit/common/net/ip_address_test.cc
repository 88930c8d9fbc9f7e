#include "common/net/ip_address.h"

#include <arpa/inet.h>

#include <string>

#include "absl/container/flat_hash_set.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::net {
namespace {

using ::testing::HasSubstr;

IpAddress Ip(const std::string& text) {
  absl::StatusOr<IpAddress> ip = IpAddress::Parse(text);
  EXPECT_TRUE(ip.ok()) << text << ": " << ip.status();
  return ip.value_or(IpAddress());
}

TEST(IpAddressTest, ParsesIpv4) {
  IpAddress ip = Ip("203.0.113.7");
  EXPECT_TRUE(ip.is_v4());
  EXPECT_FALSE(ip.is_v6());
  EXPECT_EQ(ip.ToString(), "203.0.113.7");
  EXPECT_EQ(ip.ToUriHost(), "203.0.113.7");
  EXPECT_EQ(ip, IpAddress::V4(203, 0, 113, 7));
  ASSERT_EQ(ip.bytes().size(), 4u);
  EXPECT_EQ(ip.bytes()[0], 203);
  EXPECT_EQ(ip.bytes()[3], 7);
}

TEST(IpAddressTest, ParsesIpv6WithOrWithoutBracketsToCanonicalText) {
  IpAddress plain = Ip("2001:DB8:0:0:0:0:0:1");
  IpAddress bracketed = Ip("[2001:db8::1]");
  EXPECT_TRUE(plain.is_v6());
  EXPECT_EQ(plain, bracketed);
  EXPECT_EQ(plain.ToString(), "2001:db8::1");
  EXPECT_EQ(plain.ToUriHost(), "[2001:db8::1]");
  EXPECT_EQ(plain.bytes().size(), 16u);
}

TEST(IpAddressTest, RejectsHostNamesGarbageAndZoneIds) {
  for (const char* text : {"", "pbx.example.com", "localhost", "1.2.3", "1.2.3.4.5", "300.1.1.1", "01.2.3.4",
                           " 1.2.3.4", "1.2.3.4 ", "1.2.3.4:5060", "2001:db8::1::2", "[2001:db8::1", "2001:db8::1]",
                           "[]", "[1.2.3.4]", "::g", "12345::1", "0x7f.0.0.1"}) {
    absl::StatusOr<IpAddress> ip = IpAddress::Parse(text);
    EXPECT_FALSE(ip.ok()) << "accepted \"" << text << "\"";
    EXPECT_EQ(ip.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
  absl::StatusOr<IpAddress> zoned = IpAddress::Parse("fe80::1%eth0");
  ASSERT_FALSE(zoned.ok());
  EXPECT_THAT(zoned.status().message(), HasSubstr("zone"));
  EXPECT_THAT(IpAddress::Parse("300.1.1.1").status().message(), HasSubstr("\"300.1.1.1\" is not an IP address"));
}

TEST(IpAddressTest, RejectsEmbeddedNulAndLongInput) {
  EXPECT_FALSE(IpAddress::Parse(absl::string_view("1.2.3.4\0junk", 12)).ok());
  EXPECT_FALSE(IpAddress::Parse(std::string(1000, '1')).ok());
  EXPECT_FALSE(IpAddress::Parse(std::string(1000, ':')).ok());
}

TEST(IpAddressTest, ClassifiesPrivateAndSpecialRanges) {
  for (const char* text : {"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254", "192.168.1.20",
                           "100.64.0.1", "100.127.255.255", "192.0.0.1", "192.0.0.7", "169.254.10.10", "fc00::1",
                           "fd12:3456:789a::1", "fe80::1", "febf::1", "::ffff:192.168.1.2", "::ffff:100.64.1.1"}) {
    EXPECT_TRUE(Ip(text).IsPrivateOrSpecial()) << text;
  }
  for (const char* text : {"9.255.255.255", "11.0.0.1", "172.15.255.255", "172.32.0.1", "192.169.0.1",
                           "100.63.255.255", "100.128.0.1", "192.0.0.8", "192.0.2.1", "203.0.113.7", "8.8.8.8",
                           "2001:db8::1", "fec0::1", "fbff::1", "::ffff:203.0.113.7", "127.0.0.1", "::1"}) {
    EXPECT_FALSE(Ip(text).IsPrivateOrSpecial()) << text;
  }
}

TEST(IpAddressTest, LoopbackAndUnspecified) {
  EXPECT_TRUE(Ip("127.0.0.1").IsLoopback());
  EXPECT_TRUE(Ip("127.1.2.3").IsLoopback());
  EXPECT_TRUE(Ip("::1").IsLoopback());
  EXPECT_TRUE(Ip("::ffff:127.0.0.1").IsLoopback());
  EXPECT_FALSE(Ip("128.0.0.1").IsLoopback());
  EXPECT_FALSE(Ip("::2").IsLoopback());
  EXPECT_FALSE(Ip("::").IsLoopback());

  EXPECT_TRUE(Ip("0.0.0.0").IsUnspecified());
  EXPECT_TRUE(Ip("::").IsUnspecified());
  EXPECT_TRUE(IpAddress().IsUnspecified());
  EXPECT_FALSE(Ip("0.0.0.1").IsUnspecified());
  EXPECT_FALSE(Ip("::1").IsUnspecified());
}

TEST(IpAddressTest, V4MappedIsDistinctButUnmapsToV4) {
  IpAddress mapped = Ip("::ffff:203.0.113.7");
  IpAddress v4 = Ip("203.0.113.7");
  EXPECT_TRUE(mapped.is_v6());
  EXPECT_TRUE(mapped.IsV4Mapped());
  EXPECT_FALSE(v4.IsV4Mapped());
  EXPECT_FALSE(Ip("2001:db8::1").IsV4Mapped());
  EXPECT_NE(mapped, v4);
  EXPECT_EQ(mapped.Unmapped(), v4);
  EXPECT_EQ(v4.Unmapped(), v4);
  EXPECT_EQ(Ip("2001:db8::1").Unmapped(), Ip("2001:db8::1"));
  EXPECT_EQ(mapped.ToString(), "::ffff:203.0.113.7");
}

TEST(IpAddressTest, OrdersV4BeforeV6AndByBytes) {
  EXPECT_LT(Ip("1.2.3.4"), Ip("1.2.3.5"));
  EXPECT_LT(Ip("9.0.0.0"), Ip("10.0.0.0"));
  EXPECT_LT(Ip("255.255.255.255"), Ip("::"));
  EXPECT_FALSE(Ip("1.2.3.4") < Ip("1.2.3.4"));
}

TEST(IpAddressTest, HashesByValue) {
  absl::flat_hash_set<IpAddress> set = {Ip("1.2.3.4"), Ip("2001:db8::1"), Ip("::ffff:1.2.3.4")};
  EXPECT_EQ(set.size(), 3u);
  EXPECT_TRUE(set.contains(Ip("[2001:db8:0::1]")));
  EXPECT_TRUE(set.contains(IpAddress::V4(1, 2, 3, 4)));
  EXPECT_FALSE(set.contains(Ip("1.2.3.5")));
}

TEST(IpAddressTest, SockaddrRoundTrip) {
  for (const char* text : {"198.51.100.9", "2001:db8::42"}) {
    IpAddress ip = Ip(text);
    socklen_t length = 0;
    sockaddr_storage storage = ip.ToSockaddr(5060, &length);
    if (ip.is_v4()) {
      EXPECT_EQ(storage.ss_family, AF_INET);
      EXPECT_EQ(length, sizeof(sockaddr_in));
      EXPECT_EQ(ntohs(reinterpret_cast<const sockaddr_in&>(storage).sin_port), 5060);
    } else {
      EXPECT_EQ(storage.ss_family, AF_INET6);
      EXPECT_EQ(length, sizeof(sockaddr_in6));
      EXPECT_EQ(ntohs(reinterpret_cast<const sockaddr_in6&>(storage).sin6_port), 5060);
    }
    absl::StatusOr<IpAddress> back = IpAddress::FromSockaddr(storage);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, ip);
  }
  sockaddr_storage unix_socket{};
  unix_socket.ss_family = AF_UNIX;
  EXPECT_EQ(IpAddress::FromSockaddr(unix_socket).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(IpAddressTest, ParsedTextMatchesInetPton) {
  in_addr v4;
  ASSERT_EQ(inet_pton(AF_INET, "192.0.2.33", &v4), 1);
  EXPECT_EQ(IpAddress::FromV4(v4), Ip("192.0.2.33"));
  in6_addr v6;
  ASSERT_EQ(inet_pton(AF_INET6, "2001:db8:1::33", &v6), 1);
  EXPECT_EQ(IpAddress::FromV6(v6), Ip("2001:db8:1::33"));
}

}  // namespace
}  // namespace latchkey::net
