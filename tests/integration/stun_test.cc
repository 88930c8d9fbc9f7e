// The relay's STUN responder through real clients: coturn's turnutils_stunclient (as a phone would
// ask) and another relay discovering its advertised address with `stun:`.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/support/cluster.h"
#include "tests/support/shell.h"

namespace latchkey {
namespace {

using ::testing::HasSubstr;

using testing::Shell;

class StunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto control = testing::LocalControl::Start();
    ASSERT_TRUE(control.ok()) << control.status();
    control_ = *std::move(control);
    stub_ = control_->Stub();
    // A UDP port nobody uses: the TCP probe's number is free for UDP too in practice; the relay
    // would log and run without STUN otherwise, which the tests below would notice.
    stun_port_ = testing::FreeTcpPort();
    auto relay = testing::LocalRelay::Start(*control_, "stun-relay",
                                            {absl::StrCat("--stun_listen=127.0.0.1:", stun_port_)});
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = *std::move(relay);
    ASSERT_TRUE(testing::WaitForWorker(*stub_, "stun-relay", absl::Seconds(10)));
  }

  std::unique_ptr<testing::LocalControl> control_;
  std::unique_ptr<v1::NatControlService::Stub> stub_;
  std::unique_ptr<testing::LocalRelay> relay_;
  int stun_port_ = 0;
};

TEST_F(StunTest, CoturnClientLearnsItsAddress) {
  if (Shell("command -v turnutils_stunclient").empty()) GTEST_SKIP() << "turnutils_stunclient (Debian coturn) missing";
  const std::string output = Shell(absl::StrCat("timeout 10 turnutils_stunclient -p ", stun_port_, " 127.0.0.1 2>&1"));
  EXPECT_THAT(output, HasSubstr("UDP reflexive addr: 127.0.0.1:")) << output;
  EXPECT_TRUE(testing::WaitFor(
      [&] { return !absl::StrContains(relay_->Metrics(), "latchkey_stun_requests_total{result=\"answered\"} 0"); },
      absl::Seconds(2)));
}

TEST_F(StunTest, GarbageIsRefusedAndNotAnswered) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(stun_port_));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // A STUN-looking header with a wrong type and a SIP keepalive: neither gets an answer.
  const unsigned char not_binding[20] = {0x00, 0x03, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42};
  ::sendto(fd, not_binding, sizeof(not_binding), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  ::sendto(fd, "\r\n\r\n", 4, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
  pollfd p{fd, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 500), 0) << "the responder answered something that was not a Binding request";
  ::close(fd);
  EXPECT_TRUE(testing::WaitFor(
      [&] { return absl::StrContains(relay_->Metrics(), "latchkey_stun_requests_total{result=\"refused\"} 2"); },
      absl::Seconds(2)));
}

TEST_F(StunTest, AnotherRelayDiscoversItsAdvertisedAddressFromThisOne) {
  auto second = testing::LocalRelay::Start(
      *control_, "stun-discovering",
      {absl::StrCat("--advertised_ip=stun:127.0.0.1:", stun_port_), "--stun_listen=off"});
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(testing::WaitForWorker(*stub_, "stun-discovering", absl::Seconds(10)));
  v1::ListWorkersResponse workers;
  grpc::ClientContext context;
  ASSERT_TRUE(stub_->ListWorkers(&context, v1::ListWorkersRequest(), &workers).ok());
  bool found = false;
  for (const v1::Worker& w : workers.workers()) {
    if (w.worker_id() != "stun-discovering") continue;
    found = true;
    ASSERT_EQ(w.advertised_ips_size(), 1);
    EXPECT_EQ(w.advertised_ips(0), "127.0.0.1");  // what our responder saw it as
  }
  EXPECT_TRUE(found);
  EXPECT_THAT(relay_->Metrics(), ::testing::Not(HasSubstr("latchkey_stun_requests_total{result=\"answered\"} 0")));
}

}  // namespace
}  // namespace latchkey
