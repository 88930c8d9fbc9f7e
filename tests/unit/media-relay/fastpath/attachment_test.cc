// The fast path attached to and detached from a real interface: a veth pair in a network namespace
// of this test process's own (unshare), so nothing outside it is touched and it vanishes with the
// process. Needs root (or CAP_SYS_ADMIN + CAP_BPF + CAP_NET_ADMIN): skipped with the reason otherwise.
#include "media-relay/fastpath/attachment.h"

#include <net/if.h>

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "tests/support/shell.h"

namespace latchkey::relay {
namespace {

using testing::Shell;

class FastPathAttachmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const std::string why = testing::EnterPrivateNetworkNamespace(); !why.empty()) GTEST_SKIP() << why;
    auto program = RelayProgram::Load();
    if (!program.ok()) GTEST_SKIP() << "bpf() refused here: " << program.status();
    program_ = *std::move(program);
    const std::string made = Shell("ip link add lkfp0 type veth peer name lkfp1 && ip link set lkfp0 up && ip link set lkfp1 up && echo made");
    ASSERT_NE(made.find("made"), std::string::npos) << made;
    ifindex_ = static_cast<int>(::if_nametoindex("lkfp0"));
    ASSERT_GT(ifindex_, 0);
  }

  std::unique_ptr<RelayProgram> program_;
  int ifindex_ = 0;
};

TEST_F(FastPathAttachmentTest, NativeXdpOnVethIsAttachedAndGoneWhenDestroyed) {
  auto attached = FastPathAttachment::Attach(*program_, FastPathMode::kXdp, ifindex_);
  ASSERT_TRUE(attached.ok()) << attached.status();
  EXPECT_NE(Shell("ip -d link show dev lkfp0").find("xdp"), std::string::npos) << Shell("ip -d link show dev lkfp0");
  attached->reset();
  EXPECT_EQ(Shell("ip -d link show dev lkfp0").find("prog/xdp"), std::string::npos) << Shell("ip -d link show dev lkfp0");
}

TEST_F(FastPathAttachmentTest, ASecondXdpProgramOnTheInterfaceIsRefusedClearly) {
  auto first = FastPathAttachment::Attach(*program_, FastPathMode::kXdp, ifindex_);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = FastPathAttachment::Attach(*program_, FastPathMode::kXdp, ifindex_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  EXPECT_NE(second.status().message().find("lkfp0"), absl::string_view::npos) << second.status();
}

TEST_F(FastPathAttachmentTest, TcIsAttachedOnIngressAndRemoved) {
  auto attached = FastPathAttachment::Attach(*program_, FastPathMode::kTc, ifindex_);
  ASSERT_TRUE(attached.ok()) << attached.status();
  const std::string filters = Shell("tc filter show dev lkfp0 ingress");
  EXPECT_NE(filters.find("lk_tc_relay"), std::string::npos) << filters;
  attached->reset();
  EXPECT_EQ(Shell("tc filter show dev lkfp0 ingress").find("lk_tc_relay"), std::string::npos);
}

TEST_F(FastPathAttachmentTest, TcReplacesItsOwnLeftoverAndKeepsTheQdisc) {
  ASSERT_EQ(Shell("tc qdisc add dev lkfp0 clsact && echo ok"), "ok\n");
  auto leftover = FastPathAttachment::Attach(*program_, FastPathMode::kTc, ifindex_, 30000);
  ASSERT_TRUE(leftover.ok()) << leftover.status();
  // A restarted relay attaches over what the killed one left (same handle and priority).
  auto again = FastPathAttachment::Attach(*program_, FastPathMode::kTc, ifindex_, 30000);
  ASSERT_TRUE(again.ok()) << again.status();
  const std::string filters = Shell("tc filter show dev lkfp0 ingress");
  EXPECT_NE(filters.find("handle 0x6c6b"), std::string::npos) << filters;
  EXPECT_EQ(filters.find("handle 0x6c6b"), filters.rfind("handle 0x6c6b")) << "one filter, not two: " << filters;
  again->reset();
  EXPECT_NE(Shell("tc qdisc show dev lkfp0").find("clsact"), std::string::npos) << "the operator's qdisc stays";
}

TEST_F(FastPathAttachmentTest, TwoRelaysOnOneInterfaceEachKeepTheirOwnFilter) {
  auto second_program = RelayProgram::Load();
  ASSERT_TRUE(second_program.ok()) << second_program.status();
  auto first = FastPathAttachment::Attach(*program_, FastPathMode::kTc, ifindex_, 30000);
  auto second = FastPathAttachment::Attach(**second_program, FastPathMode::kTc, ifindex_, 40000);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  std::string filters = Shell("tc filter show dev lkfp0 ingress");
  EXPECT_NE(filters.find("pref 30000"), std::string::npos) << filters;
  EXPECT_NE(filters.find("pref 40000"), std::string::npos) << filters;
  first->reset();
  filters = Shell("tc filter show dev lkfp0 ingress");
  EXPECT_EQ(filters.find("pref 30000"), std::string::npos) << filters;
  EXPECT_NE(filters.find("pref 40000"), std::string::npos) << "the other relay's stays: " << filters;
}

TEST_F(FastPathAttachmentTest, AnUnknownInterfaceIsNotFound) {
  auto attached = FastPathAttachment::Attach(*program_, FastPathMode::kTc, 999999);
  ASSERT_FALSE(attached.ok());
  EXPECT_EQ(attached.status().code(), absl::StatusCode::kNotFound) << attached.status();
}

}  // namespace
}  // namespace latchkey::relay
