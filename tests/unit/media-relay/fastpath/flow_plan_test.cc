#include "media-relay/fastpath/flow_plan.h"

#include <arpa/inet.h>

#include "gtest/gtest.h"

namespace latchkey::relay {
namespace {

net::SocketAddress Address(const char* ip, uint16_t port) { return {*net::IpAddress::Parse(ip), port}; }

FlowLeg Caller() { return {Address("198.51.100.7", 5004), 0xabcd, *net::IpAddress::Parse("192.0.2.1"), 40000, false}; }
FlowLeg Callee() { return {Address("203.0.113.9", 6000), 0x1234, *net::IpAddress::Parse("192.0.2.1"), 40002, false}; }
FlowEgress Egress() { return {3, false, {2, 0, 0, 0, 0, 1}, std::array<uint8_t, 6>{2, 0, 0, 0, 0, 0xbb}}; }

TEST(FlowPlanTest, LatchedToLatchedGivesTheExactEntry) {
  const auto entry = PlanFlow(Caller(), Callee(), Egress(), 9, 8000);
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->key.src_ip, *Ipv4Of(*net::IpAddress::Parse("198.51.100.7")));
  EXPECT_EQ(entry->key.dst_ip, *Ipv4Of(*net::IpAddress::Parse("192.0.2.1")));
  EXPECT_EQ(ntohs(entry->key.src_port), 5004);
  EXPECT_EQ(ntohs(entry->key.dst_port), 40000);
  EXPECT_EQ(entry->value.new_src_ip, *Ipv4Of(*net::IpAddress::Parse("192.0.2.1")));
  EXPECT_EQ(entry->value.new_dst_ip, *Ipv4Of(*net::IpAddress::Parse("203.0.113.9")));
  EXPECT_EQ(ntohs(entry->value.new_src_port), 40002);
  EXPECT_EQ(ntohs(entry->value.new_dst_port), 6000);
  EXPECT_EQ(ntohl(entry->value.ssrc), 0xabcdu) << "the arriving leg's SSRC";
  EXPECT_EQ(entry->value.stream, 9u);
  EXPECT_EQ(entry->value.out_ifindex, 3u);
  EXPECT_EQ(entry->value.dst_mac[5], 0xbb);
  EXPECT_EQ(entry->value.src_mac[5], 1);
  EXPECT_EQ(entry->value.flags, 0u);
}

TEST(FlowPlanTest, NothingUntilBothLegsLatchedWithAnSsrc) {
  FlowLeg unlatched = Callee();
  unlatched.lock.reset();
  EXPECT_FALSE(PlanFlow(Caller(), unlatched, Egress(), 1, 8000));
  EXPECT_FALSE(PlanFlow(unlatched, Caller(), Egress(), 1, 8000));
  FlowLeg no_ssrc = Caller();
  no_ssrc.ssrc = 0;
  EXPECT_FALSE(PlanFlow(no_ssrc, Callee(), Egress(), 1, 8000));
}

TEST(FlowPlanTest, NotForIpv6WildcardBindsChainedLegsOrAnUnknownInterface) {
  FlowLeg v6 = Caller();
  v6.lock = Address("2001:db8::7", 5004);
  EXPECT_FALSE(PlanFlow(v6, Callee(), Egress(), 1, 8000));
  FlowLeg wildcard = Caller();
  wildcard.bind_ip = *net::IpAddress::Parse("0.0.0.0");
  EXPECT_FALSE(PlanFlow(wildcard, Callee(), Egress(), 1, 8000));
  FlowLeg chained = Callee();
  chained.relay_chain = true;
  EXPECT_FALSE(PlanFlow(Caller(), chained, Egress(), 1, 8000));
  FlowEgress nowhere = Egress();
  nowhere.ifindex = 0;
  EXPECT_FALSE(PlanFlow(Caller(), Callee(), nowhere, 1, 8000));
}

TEST(FlowPlanTest, V4MappedAddressesAreIpv4) {
  FlowLeg mapped = Caller();
  mapped.lock = Address("::ffff:198.51.100.7", 5004);
  const auto entry = PlanFlow(mapped, Callee(), Egress(), 1, 8000);
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->key.src_ip, *Ipv4Of(*net::IpAddress::Parse("198.51.100.7")));
}

TEST(FlowPlanTest, LoopbackKeepsTheMacsAndAnUnresolvedNextHopLeavesThemZero) {
  FlowEgress loopback = Egress();
  loopback.loopback = true;
  auto entry = PlanFlow(Caller(), Callee(), loopback, 1, 8000);
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->value.flags, LK_FLOW_KEEP_L2);
  FlowEgress unresolved = Egress();
  unresolved.next_hop_mac.reset();
  entry = PlanFlow(Caller(), Callee(), unresolved, 1, 8000);
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry->value.dst_mac[0] | entry->value.dst_mac[5], 0) << "XDP hands back until resolved";
}

TEST(FlowPlanTest, ARelatchChangesTheKeyAndEntriesCompareByValue) {
  const auto before = PlanFlow(Caller(), Callee(), Egress(), 1, 8000);
  FlowLeg rebound = Caller();
  rebound.lock = Address("198.51.100.7", 5010);
  const auto after = PlanFlow(rebound, Callee(), Egress(), 1, 8000);
  ASSERT_TRUE(before && after);
  EXPECT_FALSE(*before == *after);
  EXPECT_TRUE(*before == *PlanFlow(Caller(), Callee(), Egress(), 1, 8000));
}

}  // namespace
}  // namespace latchkey::relay
