// Next-hop resolution against a real routing and neighbour table, in a network namespace of the
// test's own. Needs root: skipped with the reason otherwise.
#include "media-relay/fastpath/next_hop.h"

#include <net/if.h>

#include <string>

#include "gtest/gtest.h"
#include "media-relay/fastpath/flow_plan.h"
#include "tests/support/shell.h"

namespace latchkey::relay {
namespace {

using testing::Shell;

uint32_t Ip(const char* text) { return *Ipv4Of(*net::IpAddress::Parse(text)); }

class NextHopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = testing::EnterPrivateNetworkNamespace(); !why.empty()) GTEST_SKIP() << why;
    const std::string made = Shell(
        "ip link add lknh0 type veth peer name lknh1 && ip link set lknh0 up && ip link set lknh1 up && "
        "ip addr add 10.9.0.1/24 dev lknh0 && "
        "ip neigh add 10.9.0.5 lladdr 02:00:00:00:00:05 dev lknh0 nud permanent && "
        "ip route add 198.51.100.0/24 via 10.9.0.5 && echo made");
    ASSERT_NE(made.find("made"), std::string::npos) << made;
    ifindex_ = static_cast<int>(::if_nametoindex("lknh0"));
  }
  int ifindex_ = 0;
};

TEST_F(NextHopTest, AnOnLinkDestinationResolvesToItsOwnMac) {
  auto hop = ResolveNextHop(Ip("10.9.0.5"));
  ASSERT_TRUE(hop.ok()) << hop.status();
  EXPECT_EQ(hop->ifindex, ifindex_);
  EXPECT_EQ(hop->via, Ip("10.9.0.5"));
  EXPECT_EQ(hop->mac[0], 0x02);
  EXPECT_EQ(hop->mac[5], 0x05);
}

TEST_F(NextHopTest, ARoutedDestinationResolvesToItsGatewaysMac) {
  auto hop = ResolveNextHop(Ip("198.51.100.7"));
  ASSERT_TRUE(hop.ok()) << hop.status();
  EXPECT_EQ(hop->ifindex, ifindex_);
  EXPECT_EQ(hop->via, Ip("10.9.0.5"));
  EXPECT_EQ(hop->mac[5], 0x05);
}

TEST_F(NextHopTest, AnUnresolvedNeighbourOrNoRouteIsNotFound) {
  auto unresolved = ResolveNextHop(Ip("10.9.0.6"));
  ASSERT_FALSE(unresolved.ok());
  EXPECT_EQ(unresolved.status().code(), absl::StatusCode::kNotFound) << unresolved.status();
  auto unrouted = ResolveNextHop(Ip("203.0.113.1"));
  ASSERT_FALSE(unrouted.ok());
  EXPECT_EQ(unrouted.status().code(), absl::StatusCode::kNotFound) << unrouted.status();
}

}  // namespace
}  // namespace latchkey::relay
