#include "common/net/socket_address.h"

#include "absl/container/flat_hash_set.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace latchkey::net {
namespace {

using ::testing::HasSubstr;

TEST(SocketAddressTest, ParsesIpv4AndBracketedIpv6) {
  absl::StatusOr<SocketAddress> v4 = SocketAddress::Parse("203.0.113.7:5060");
  ASSERT_TRUE(v4.ok()) << v4.status();
  EXPECT_EQ(v4->ip, IpAddress::V4(203, 0, 113, 7));
  EXPECT_EQ(v4->port, 5060);
  EXPECT_EQ(v4->ToString(), "203.0.113.7:5060");

  absl::StatusOr<SocketAddress> v6 = SocketAddress::Parse("[2001:DB8::1]:65535");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_TRUE(v6->ip.is_v6());
  EXPECT_EQ(v6->port, 65535);
  EXPECT_EQ(v6->ToString(), "[2001:db8::1]:65535");
}

TEST(SocketAddressTest, RejectsMissingOrBadPortsAndAmbiguousIpv6) {
  for (const char* text : {"", "1.2.3.4", "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4:99999999999",
                           "1.2.3.4:-1", "1.2.3.4:+5", "1.2.3.4:50a", "1.2.3.4: 5060", "2001:db8::1:5060",
                           "[2001:db8::1]", "[2001:db8::1]5060", "[::1:5060", "host.example.com:5060",
                           ":5060", "1.2.3.4:5060:1"}) {
    absl::StatusOr<SocketAddress> address = SocketAddress::Parse(text);
    EXPECT_FALSE(address.ok()) << "accepted \"" << text << "\"";
    EXPECT_EQ(address.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
}

TEST(SocketAddressTest, ParsePortBounds) {
  EXPECT_EQ(ParsePort("1").value_or(0), 1);
  EXPECT_EQ(ParsePort("65535").value_or(0), 65535);
  EXPECT_EQ(ParsePort("05060").value_or(0), 5060);
  EXPECT_FALSE(ParsePort("0").ok());
  EXPECT_FALSE(ParsePort("65536").ok());
  EXPECT_FALSE(ParsePort("").ok());
  EXPECT_FALSE(ParsePort("123456").ok());
}

TEST(SocketAddressTest, EqualityAndHash) {
  SocketAddress a{IpAddress::V4(1, 2, 3, 4), 5060};
  SocketAddress b{IpAddress::V4(1, 2, 3, 4), 5061};
  EXPECT_EQ(a, SocketAddress::Parse("1.2.3.4:5060").value());
  EXPECT_NE(a, b);
  absl::flat_hash_set<SocketAddress> set = {a, b, a};
  EXPECT_EQ(set.size(), 2u);
}

TEST(SocketAddressTest, SockaddrRoundTrip) {
  for (const char* text : {"198.51.100.9:40000", "[2001:db8::42]:5062"}) {
    SocketAddress address = SocketAddress::Parse(text).value();
    socklen_t length = 0;
    sockaddr_storage storage = address.ToSockaddr(&length);
    EXPECT_GT(length, 0u);
    absl::StatusOr<SocketAddress> back = SocketAddress::FromSockaddr(storage);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, address) << text;
  }
}

TEST(SocketAddressTest, FromProtoValidatesAndNamesTheField) {
  v1::SocketAddress proto;
  proto.set_ip("2001:db8::7");
  proto.set_port(5060);
  absl::StatusOr<SocketAddress> address = FromProto(proto, "source");
  ASSERT_TRUE(address.ok()) << address.status();
  EXPECT_EQ(address->ToString(), "[2001:db8::7]:5060");

  proto.set_ip("300.1.1.1");
  EXPECT_EQ(FromProto(proto, "source").status().message(), "source.ip: \"300.1.1.1\" is not an IP address");
  proto.set_ip("pbx.example.com");
  EXPECT_EQ(FromProto(proto, "registrar").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(FromProto(proto, "registrar").status().message(), HasSubstr("registrar.ip: "));

  proto.set_ip("203.0.113.7");
  proto.set_port(0);
  EXPECT_EQ(FromProto(proto, "source").status().message(), "source.port: must be 1-65535, got 0");
  proto.set_port(70000);
  EXPECT_EQ(FromProto(proto, "source").status().message(), "source.port: must be 1-65535, got 70000");
}

TEST(SocketAddressTest, ToProtoWritesCanonicalIpWithoutBrackets) {
  v1::SocketAddress proto = ToProto(SocketAddress::Parse("[2001:0db8::0001]:5060").value());
  EXPECT_EQ(proto.ip(), "2001:db8::1");
  EXPECT_EQ(proto.port(), 5060u);
  EXPECT_EQ(FromProto(proto, "x").value(), SocketAddress::Parse("[2001:db8::1]:5060").value());
}

}  // namespace
}  // namespace latchkey::net
