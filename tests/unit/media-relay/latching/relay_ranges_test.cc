#include "media-relay/latching/relay_ranges.h"

#include "gtest/gtest.h"

namespace latchkey::relay {
namespace {

net::SocketAddress Addr(const char* text) { return *net::SocketAddress::Parse(text); }
net::IpAddress Ip(const char* text) { return *net::IpAddress::Parse(text); }
bool Contains(const RelayRanges& ranges, const net::SocketAddress& source) {
  return ranges.Find(source) != RelayRanges::Match::kNone;
}

TEST(RelayRangesTest, ContainsOnlyTheRangesPortsOnTheirAddresses) {
  RelayRanges ranges({{Ip("203.0.113.10"), 30000, 39999}, {Ip("2001:db8::10"), 40000, 40099}});
  EXPECT_TRUE(Contains(ranges, Addr("203.0.113.10:30000")));
  EXPECT_TRUE(Contains(ranges, Addr("203.0.113.10:39999")));
  EXPECT_FALSE(Contains(ranges, Addr("203.0.113.10:29999")));
  EXPECT_FALSE(Contains(ranges, Addr("203.0.113.10:40000")));
  EXPECT_FALSE(Contains(ranges, Addr("203.0.113.11:30000")));
  EXPECT_TRUE(Contains(ranges, Addr("[2001:db8::10]:40050")));
  EXPECT_FALSE(Contains(ranges, Addr("[2001:db8::10]:30000")));
}

TEST(RelayRangesTest, V4MappedSourcesMatchIpv4Ranges) {
  // A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d.
  RelayRanges ranges({{Ip("203.0.113.10"), 30000, 30099}});
  EXPECT_TRUE(Contains(ranges, Addr("[::ffff:203.0.113.10]:30050")));
  RelayRanges mapped({{Ip("::ffff:203.0.113.10"), 30000, 30099}});
  EXPECT_TRUE(Contains(mapped, Addr("203.0.113.10:30050")));
}

TEST(RelayRangesTest, OwnRangeWinsOverAPeersReportOfIt) {
  RelayRanges ranges({{Ip("203.0.113.10"), 30000, 30099, /*own=*/false},
                      {Ip("203.0.113.10"), 30000, 30099, /*own=*/true},
                      {Ip("203.0.113.20"), 30000, 30099, /*own=*/false}});
  EXPECT_EQ(ranges.Find(Addr("203.0.113.10:30050")), RelayRanges::Match::kOwn);
  EXPECT_EQ(ranges.Find(Addr("203.0.113.20:30050")), RelayRanges::Match::kPeer);
  EXPECT_EQ(ranges.Find(Addr("203.0.113.30:30050")), RelayRanges::Match::kNone);
}

TEST(RelayRangesTest, EmptyContainsNothing) {
  RelayRanges none({});
  EXPECT_EQ(none.size(), 0u);
  EXPECT_FALSE(Contains(none, Addr("127.0.0.1:30000")));
}

}  // namespace
}  // namespace latchkey::relay
