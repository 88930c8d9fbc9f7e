#include "media-relay/stun/stun_client.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/net/ip_address.h"
#include "common/net/socket_address.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "media-relay/stun/stun_message.h"

namespace latchkey::relay::stun {
namespace {

using ::testing::HasSubstr;
using Bytes = std::vector<uint8_t>;

net::IpAddress Ip(const std::string& text) { return net::IpAddress::Parse(text).value(); }

// A STUN server on loopback run by a thread. For the n-th request received (from 0) `reply` returns
// the datagrams to send back (none: stay silent).
class TestResponder {
 public:
  using Reply = std::function<std::vector<Bytes>(int index, const Message& request, const net::SocketAddress& from)>;

  explicit TestResponder(Reply reply, const net::IpAddress& ip = net::IpAddress::V4(127, 0, 0, 1))
      : reply_(std::move(reply)) {
    fd_ = ::socket(ip.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    socklen_t length = 0;
    sockaddr_storage address = ip.ToSockaddr(0, &length);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0) return;
    length = sizeof(address);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = net::SocketAddress::FromSockaddr(address)->port;
    thread_ = std::thread([this] { Serve(); });
  }
  ~TestResponder() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }

  bool ok() const { return port_ != 0; }
  uint16_t port() const { return port_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int requests() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(ids_.size());
  }
  std::vector<TransactionId> transaction_ids() const {
    absl::MutexLock lock(&mu_);
    return ids_;
  }
  std::vector<absl::Time> arrivals() const {
    absl::MutexLock lock(&mu_);
    return arrivals_;
  }

 private:
  void Serve() {
    uint8_t buffer[2048];
    while (!stop_) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 20) <= 0) continue;
      sockaddr_storage from{};
      socklen_t from_length = sizeof(from);
      const ssize_t n = ::recvfrom(fd_, buffer, sizeof(buffer), 0, reinterpret_cast<sockaddr*>(&from), &from_length);
      if (n <= 0) continue;
      const auto request = Parse(buffer, static_cast<size_t>(n));
      if (!request || request->message_class != MessageClass::kRequest) continue;
      int index;
      {
        absl::MutexLock lock(&mu_);
        index = static_cast<int>(ids_.size());
        ids_.push_back(request->transaction_id);
        arrivals_.push_back(absl::Now());
      }
      const net::SocketAddress peer = net::SocketAddress::FromSockaddr(from).value();
      for (const Bytes& datagram : reply_(index, *request, peer)) {
        ::sendto(fd_, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&from), from_length);
      }
    }
  }

  Reply reply_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable absl::Mutex mu_;
  std::vector<TransactionId> ids_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> arrivals_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

const net::SocketAddress kMapped{net::IpAddress::V4(203, 0, 113, 7), 4242};

TestResponder::Reply AlwaysAnswer(net::SocketAddress mapped = kMapped) {
  return [mapped](int, const Message& request, const net::SocketAddress&) {
    return std::vector<Bytes>{BindingSuccess(request.transaction_id, mapped)};
  };
}

// A UDP port on 127.0.0.1 that nothing listens on (bound, read, closed).
uint16_t DeadPort() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_storage address = net::IpAddress::V4(127, 0, 0, 1).ToSockaddr(0);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(sockaddr_in));
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return net::SocketAddress::FromSockaddr(address)->port;
}

const net::IpAddress kLoopback = net::IpAddress::V4(127, 0, 0, 1);

// ---------------------------------------------------------------------------------------------
// ParseServerAddress

TEST(StunServerAddressTest, Forms) {
  auto a = ParseServerAddress("stun.example.com");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "stun.example.com");
  EXPECT_EQ(a->port, 3478);
  a = ParseServerAddress("stun.l.example_net.org:19302");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->port, 19302);
  a = ParseServerAddress("192.0.2.1:3479");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "192.0.2.1");
  EXPECT_EQ(a->ToString(), "192.0.2.1:3479");
  a = ParseServerAddress("[2001:db8::1]:3480");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "2001:db8::1");
  EXPECT_EQ(a->port, 3480);
  EXPECT_EQ(a->ToString(), "[2001:db8::1]:3480");
  a = ParseServerAddress("[::1]");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->port, 3478);
  a = ParseServerAddress("2001:db8::2");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "2001:db8::2");
  EXPECT_EQ(a->port, 3478);
}

TEST(StunServerAddressTest, Errors) {
  for (const char* bad : {"", ":3478", "host:", "host:0", "host:65536", "host:x", "a b", "host/path", "[::1",
                          "[::1]x", "[::1]:", "[1.2.3.4]:3478", "2001:db8::zz", "h\xc3\xa9st"}) {
    auto a = ParseServerAddress(bad);
    EXPECT_FALSE(a.ok()) << bad;
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(a.status().message(), HasSubstr("STUN server")) << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// DiscoverPublicAddress

TEST(StunClientTest, ReturnsTheMappedAddress) {
  TestResponder responder(AlwaysAnswer());
  ASSERT_TRUE(responder.ok());
  auto ip = DiscoverPublicAddress(responder.address(), kLoopback, absl::Seconds(5));
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(*ip, kMapped.ip);
  EXPECT_EQ(responder.requests(), 1);
}

TEST(StunClientTest, ResolvesTheServerName) {
  TestResponder responder(AlwaysAnswer({Ip("2001:db8::7"), 1}));
  ASSERT_TRUE(responder.ok());
  auto ip = DiscoverPublicAddress(absl::StrCat("localhost:", responder.port()), kLoopback, absl::Seconds(5));
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(*ip, Ip("2001:db8::7"));
}

TEST(StunClientTest, AcceptsMappedAddressOnly) {
  // RFC 3489 servers answer with MAPPED-ADDRESS alone.
  TestResponder responder([](int, const Message& request, const net::SocketAddress&) {
    return std::vector<Bytes>{
        MessageBuilder(kBindingSuccess, request.transaction_id).AddMappedAddress({Ip("198.51.100.4"), 5}).Finish()};
  });
  ASSERT_TRUE(responder.ok());
  auto ip = DiscoverPublicAddress(responder.address(), kLoopback, absl::Seconds(5));
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(*ip, Ip("198.51.100.4"));
}

TEST(StunClientTest, AnswerToTheSecondRetransmissionSucceeds) {
  TestResponder responder([](int index, const Message& request, const net::SocketAddress&) {
    if (index < 2) return std::vector<Bytes>{};
    return std::vector<Bytes>{BindingSuccess(request.transaction_id, kMapped)};
  });
  ASSERT_TRUE(responder.ok());
  const absl::Time start = absl::Now();
  auto ip = DiscoverPublicAddress(responder.address(), kLoopback, absl::Seconds(5));
  const absl::Duration took = absl::Now() - start;
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(*ip, kMapped.ip);
  // Requests at 0, 500 ms and 1500 ms (RTO doubling), all one transaction.
  const auto ids = responder.transaction_ids();
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], ids[1]);
  EXPECT_EQ(ids[1], ids[2]);
  EXPECT_GE(took, absl::Milliseconds(1400));
  EXPECT_LT(took, absl::Milliseconds(3000));
  const auto at = responder.arrivals();
  EXPECT_GE(at[1] - at[0], absl::Milliseconds(300));  // 500 ms, less scheduling noise
  EXPECT_GE(at[2] - at[1], absl::Milliseconds(700));  // 1000 ms
}

TEST(StunClientTest, DeadPortIsUnavailableWithinTheTimeout) {
  const absl::Time start = absl::Now();
  auto ip = DiscoverPublicAddress(absl::StrCat("127.0.0.1:", DeadPort()), kLoopback, absl::Seconds(2));
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(ip.ok());
  EXPECT_EQ(ip.status().code(), absl::StatusCode::kUnavailable) << ip.status();
  EXPECT_LT(took, absl::Milliseconds(2500));
}

TEST(StunClientTest, SilentServerTimesOutAsUnavailable) {
  TestResponder responder([](int, const Message&, const net::SocketAddress&) { return std::vector<Bytes>{}; });
  ASSERT_TRUE(responder.ok());
  const absl::Time start = absl::Now();
  auto ip = DiscoverPublicAddress(responder.address(), kLoopback, absl::Milliseconds(1200));
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(ip.ok());
  EXPECT_EQ(ip.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(ip.status().message(), HasSubstr("no answer after 2 request(s)"));
  EXPECT_GE(took, absl::Milliseconds(1150));
  EXPECT_LT(took, absl::Milliseconds(2000));
  EXPECT_EQ(responder.requests(), 2);  // at 0 and 500 ms; the next would be at 1500 ms
}

TEST(StunClientTest, GivesUpAfterSevenRequestsAndTheFinalWait) {
  TestResponder responder([](int, const Message&, const net::SocketAddress&) { return std::vector<Bytes>{}; });
  ASSERT_TRUE(responder.ok());
  DiscoveryOptions options;
  options.initial_rto = absl::Milliseconds(10);
  const absl::Time start = absl::Now();
  // 10+20+40+80+160+320 ms between the 7 requests, then 16 x 10 ms: 790 ms, well before the timeout.
  auto ip = DiscoverPublicAddress(responder.address(), kLoopback, absl::Seconds(10), options);
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(ip.ok());
  EXPECT_EQ(ip.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(responder.requests(), 7);
  EXPECT_GE(took, absl::Milliseconds(780));
  EXPECT_LT(took, absl::Seconds(5));
  const auto at = responder.arrivals();
  ASSERT_EQ(at.size(), 7u);
  EXPECT_GE(at[6] - at[5], absl::Milliseconds(200));  // the sixth RTO: 320 ms
}

TEST(StunClientTest, MismatchedTransactionIdIgnored) {
  TestResponder responder([](int, const Message& request, const net::SocketAddress&) {
    TransactionId other = request.transaction_id;
    other[11] ^= 0xff;
    return std::vector<Bytes>{BindingSuccess(other, {Ip("198.51.100.66"), 6}),
                              Bytes{'n', 'o', 't', ' ', 's', 't', 'u', 'n'},
                              BindingRequest(request.transaction_id),  // right id, but not a response
                              BindingSuccess(request.transaction_id, kMapped)};
  });
  ASSERT_TRUE(responder.ok());
  auto ip = DiscoverPublicAddress(responder.address(), kLoopback, absl::Seconds(5));
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(*ip, kMapped.ip);
}

TEST(StunClientTest, OnlyMismatchedTransactionIdsTimeOut) {
  TestResponder responder([](int, const Message& request, const net::SocketAddress&) {
    TransactionId other = request.transaction_id;
    other[0] ^= 0x01;
    return std::vector<Bytes>{BindingSuccess(other, {Ip("198.51.100.66"), 6})};
  });
  ASSERT_TRUE(responder.ok());
  auto ip = DiscoverPublicAddress(responder.address(), kLoopback, absl::Milliseconds(700));
  ASSERT_FALSE(ip.ok());
  EXPECT_EQ(ip.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_GE(responder.requests(), 1);
}

TEST(StunClientTest, ErrorResponseIsUnavailable) {
  TestResponder responder([](int, const Message& request, const net::SocketAddress&) {
    return std::vector<Bytes>{
        MessageBuilder(kBindingError, request.transaction_id).AddErrorCode(401, "Unauthorized").Finish()};
  });
  ASSERT_TRUE(responder.ok());
  auto ip = DiscoverPublicAddress(responder.address(), kLoopback, absl::Seconds(5));
  ASSERT_FALSE(ip.ok());
  EXPECT_EQ(ip.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(ip.status().message(), HasSubstr("error response 401 Unauthorized"));
}

TEST(StunClientTest, ResponseWithoutAddressOrWithUnknownRequiredAttributeIsUnavailable) {
  TestResponder empty([](int, const Message& request, const net::SocketAddress&) {
    return std::vector<Bytes>{MessageBuilder(kBindingSuccess, request.transaction_id).Finish()};
  });
  ASSERT_TRUE(empty.ok());
  auto ip = DiscoverPublicAddress(empty.address(), kLoopback, absl::Seconds(5));
  ASSERT_FALSE(ip.ok());
  EXPECT_THAT(ip.status().message(), HasSubstr("without (XOR-)MAPPED-ADDRESS"));

  TestResponder unknown([](int, const Message& request, const net::SocketAddress&) {
    const uint8_t value[4] = {};
    return std::vector<Bytes>{MessageBuilder(kBindingSuccess, request.transaction_id)
                                  .AddXorMappedAddress(kMapped)
                                  .AddAttribute(0x7f01, value, 4)
                                  .Finish()};
  });
  ASSERT_TRUE(unknown.ok());
  ip = DiscoverPublicAddress(unknown.address(), kLoopback, absl::Seconds(5));
  ASSERT_FALSE(ip.ok());
  EXPECT_EQ(ip.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(ip.status().message(), HasSubstr("0x7f01"));
}

TEST(StunClientTest, BadServerIsInvalidArgument) {
  auto ip = DiscoverPublicAddress("127.0.0.1:notaport", kLoopback, absl::Seconds(1));
  ASSERT_FALSE(ip.ok());
  EXPECT_EQ(ip.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StunClientTest, ServerLiteralOfTheOtherFamilyIsInvalid) {
  // An IPv6 literal cannot be reached from an IPv4 bind address: a configuration error.
  auto ip = DiscoverPublicAddress("[::1]:3478", kLoopback, absl::Seconds(1));
  ASSERT_FALSE(ip.ok());
  EXPECT_EQ(ip.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ip.status().message(), HasSubstr("IPv4"));
}

TEST(StunClientTest, Ipv6Loopback) {
  TestResponder responder(AlwaysAnswer({Ip("2001:db8::70"), 7}), Ip("::1"));
  if (!responder.ok()) GTEST_SKIP() << "no IPv6 loopback here";
  auto ip = DiscoverPublicAddress(absl::StrCat("[::1]:", responder.port()), Ip("::1"), absl::Seconds(5));
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(*ip, Ip("2001:db8::70"));
}

// ---------------------------------------------------------------------------------------------
// Interoperability with coturn's STUN client, if installed: our encoder's responses must satisfy
// an independent implementation. (Debian's stun-client speaks RFC 3489 without the magic cookie,
// which this codec deliberately does not accept, so it is not used.)

std::string FindProgram(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return "";
  std::string dirs = path;
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string candidate = absl::StrCat(dirs.substr(start, end - start), "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

TEST(StunInteropTest, CoturnClientAcceptsOurResponses) {
  const std::string program = FindProgram("turnutils_stunclient");
  if (program.empty()) GTEST_SKIP() << "turnutils_stunclient (Debian package coturn) is not installed";
  TestResponder responder(AlwaysAnswer({Ip("203.0.113.77"), 4321}));
  ASSERT_TRUE(responder.ok());
  const std::string command =
      absl::StrCat("timeout 10 ", program, " -p ", responder.port(), " 127.0.0.1 2>&1");
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char chunk[512];
  while (size_t n = std::fread(chunk, 1, sizeof(chunk), pipe)) output.append(chunk, n);
  ::pclose(pipe);
  EXPECT_GE(responder.requests(), 1) << output;
  EXPECT_THAT(output, HasSubstr("203.0.113.77:4321")) << output;
}

}  // namespace
}  // namespace latchkey::relay::stun
