// The packet engine over real loopback sockets, once per packet I/O (epoll, io_uring): forwarding
// with latching, a burst larger than io_uring's buffer ring, and detaching while packets arrive.
#include "media-relay/engine/packet_engine.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/support/io_uring_probe.h"

namespace latchkey::relay {
namespace {

const net::IpAddress kLoopback = *net::IpAddress::Parse("127.0.0.1");

// A phone's media socket on 127.0.0.1.
class Phone {
 public:
  Phone() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    socklen_t length = sizeof(address);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    const int buffer = 8 << 20;  // bursts below must not overflow the phone (root: FORCE works)
    if (::setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof(buffer)) != 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof(buffer));
    }
  }
  ~Phone() { ::close(fd_); }
  uint16_t port() const { return port_; }
  net::SocketAddress address() const { return {kLoopback, port_}; }

  void SendRtp(uint16_t to_port, uint32_t ssrc, uint16_t sequence) {
    uint8_t packet[172] = {0x80, 0x00};
    packet[2] = sequence >> 8;
    packet[3] = sequence & 0xff;
    const uint32_t timestamp = 160u * sequence;
    for (int i = 0; i < 4; ++i) packet[4 + i] = static_cast<uint8_t>(timestamp >> (24 - 8 * i));
    for (int i = 0; i < 4; ++i) packet[8 + i] = static_cast<uint8_t>(ssrc >> (24 - 8 * i));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(to_port);
    ASSERT_EQ(::sendto(fd_, packet, sizeof(packet), 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)),
              static_cast<ssize_t>(sizeof(packet)));
  }
  // Datagrams that arrive until `quiet` passes without one (bounded by 20 s).
  int Drain(absl::Duration quiet) {
    int count = 0;
    absl::Time last = absl::Now();
    const absl::Time limit = last + absl::Seconds(20);
    uint8_t buffer[2048];
    while (absl::Now() - last < quiet && absl::Now() < limit) {
      if (::recv(fd_, buffer, sizeof(buffer), 0) > 0) {
        ++count;
        last = absl::Now();
      } else {
        absl::SleepFor(absl::Milliseconds(1));
      }
    }
    return count;
  }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

uint16_t LocalPort(const UdpSocket& socket) {
  sockaddr_in address{};
  socklen_t length = sizeof(address);
  ::getsockname(socket.fd(), reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

// A stream whose legs expect `caller` and `callee` at their SDP addresses (latching from there).
struct TestStream {
  std::shared_ptr<RelayStream> relay = std::make_shared<RelayStream>();
  Phone caller, callee;
  uint16_t caller_port = 0, callee_port = 0;  // the relay ports each phone sends to

  explicit TestStream(const std::string& id) {
    relay->session_id = id;
    relay->activity = std::make_shared<SessionActivity>();
    for (RelayLeg* leg : {&relay->caller, &relay->callee}) {
      leg->rtp = *UdpSocket::Bind(kLoopback, 0);
      leg->rtcp = *UdpSocket::Bind(kLoopback, 0);
    }
    caller_port = LocalPort(relay->caller.rtp);
    callee_port = LocalPort(relay->callee.rtp);
  }
  LegTarget Target(const Phone& phone) const {
    LegTarget target;
    target.policy.mode = v1::LATCHING_MODE_HEURISTIC;
    target.target.sdp = phone.address();
    target.target.signaling_ip = kLoopback;
    target.target.sdp_sendable = true;
    return target;
  }
  void Attach(PacketEngine& engine) { engine.Attach(relay, Target(caller), Target(callee), SessionTimeouts{}); }
  // Paced like a phone (probation refuses packets faster than a stream's rate).
  void SendPaced(int count, uint16_t first_sequence) {
    for (int i = 0; i < count; ++i) {
      caller.SendRtp(caller_port, 0x1111, static_cast<uint16_t>(first_sequence + i));
      callee.SendRtp(callee_port, 0x2222, static_cast<uint16_t>(first_sequence + i));
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
};

uint64_t Get(const std::atomic<uint64_t>& counter) { return counter.load(); }

class PacketEngineTest : public ::testing::TestWithParam<PacketIoMode> {
 protected:
  void SetUp() override {
    if (GetParam() == PacketIoMode::kIoUring && !testing::KernelAllowsIoUring()) {
      GTEST_SKIP() << "io_uring_setup refused here (kernel or seccomp)";
    }
    engine_ = std::make_unique<PacketEngine>(1, nullptr, GetParam());
    ASSERT_TRUE(engine_->Start().ok());
    EXPECT_STREQ(engine_->io_name(), GetParam() == PacketIoMode::kIoUring ? "io_uring" : "epoll");
  }
  std::unique_ptr<PacketEngine> engine_;
};

TEST_P(PacketEngineTest, ForwardsBothWaysAfterLatchingAndCountsExactly) {
  TestStream stream("s-forward");
  stream.Attach(*engine_);
  stream.SendPaced(40, 1);
  const int at_callee = stream.callee.Drain(absl::Milliseconds(300));
  const int at_caller = stream.caller.Drain(absl::Milliseconds(300));
  // From the exact SDP address the relay sends before and after the lock: nothing is lost.
  EXPECT_EQ(at_callee, 40);
  EXPECT_EQ(at_caller, 40);
  const EngineCounters& counters = engine_->counters(0);
  EXPECT_EQ(Get(counters.packets_in), 80u);
  EXPECT_EQ(Get(counters.packets_out), 80u);
  EXPECT_EQ(Get(counters.bytes_out), 80u * 172);
  EXPECT_EQ(Get(stream.relay->caller.packets_out), 40u);  // out towards the caller
  EXPECT_EQ(Get(stream.relay->callee.packets_in), 40u);
  EXPECT_GE(Get(counters.latches), 2u);
}

TEST_P(PacketEngineTest, BurstLargerThanTheBufferRingLosesNothing) {
  constexpr int kStreams = 12;
  constexpr int kBurst = 120;  // per phone: 2,880 datagrams at once, several times io_uring's 1,024 buffers
  std::vector<std::unique_ptr<TestStream>> streams;
  for (int i = 0; i < kStreams; ++i) {
    streams.push_back(std::make_unique<TestStream>("s-burst-" + std::to_string(i)));
    streams.back()->Attach(*engine_);
  }
  for (auto& s : streams) s->SendPaced(6, 1);  // latch (paced: probation)
  for (auto& s : streams) {
    s->caller.Drain(absl::Milliseconds(50));
    s->callee.Drain(absl::Milliseconds(50));
  }
  const uint64_t out_before = Get(engine_->counters(0).packets_out);
  // Hold the packet thread while the burst is queued in the relay's sockets.
  absl::Notification holding, release;
  engine_->Post(0, [&] {
    holding.Notify();
    release.WaitForNotificationWithTimeout(absl::Seconds(10));
  });
  ASSERT_TRUE(holding.WaitForNotificationWithTimeout(absl::Seconds(5)));
  for (int n = 0; n < kBurst; ++n) {
    for (auto& s : streams) {
      s->caller.SendRtp(s->caller_port, 0x1111, static_cast<uint16_t>(7 + n));
      s->callee.SendRtp(s->callee_port, 0x2222, static_cast<uint16_t>(7 + n));
    }
  }
  release.Notify();
  int received = 0;
  for (auto& s : streams) received += s->caller.Drain(absl::Milliseconds(300)) + s->callee.Drain(absl::Milliseconds(50));
  EXPECT_EQ(received, kStreams * 2 * kBurst);
  EXPECT_EQ(Get(engine_->counters(0).packets_out) - out_before, static_cast<uint64_t>(kStreams * 2 * kBurst));
}

TEST_P(PacketEngineTest, DetachWhilePacketsArriveLetsGoOfTheStream) {
  auto stream = std::make_unique<TestStream>("s-detach");
  stream->Attach(*engine_);
  stream->SendPaced(6, 1);
  std::weak_ptr<RelayStream> weak = stream->relay;
  // Packets keep coming while the engine detaches.
  for (int i = 0; i < 50; ++i) stream->caller.SendRtp(stream->caller_port, 0x1111, static_cast<uint16_t>(7 + i));
  engine_->Detach(stream->relay);
  stream->relay.reset();
  bool released = false;
  for (int i = 0; i < 200 && !released; ++i) {
    released = weak.expired();
    if (!released) absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_TRUE(released) << "the engine still holds a detached stream";
  // The engine goes on with other streams.
  TestStream next("s-next");
  next.Attach(*engine_);
  next.SendPaced(10, 1);
  EXPECT_EQ(next.callee.Drain(absl::Milliseconds(300)), 10);
}

INSTANTIATE_TEST_SUITE_P(PacketIo, PacketEngineTest, ::testing::Values(PacketIoMode::kEpoll, PacketIoMode::kIoUring),
                         [](const auto& info) { return info.param == PacketIoMode::kEpoll ? "epoll" : "io_uring"; });

}  // namespace
}  // namespace latchkey::relay
