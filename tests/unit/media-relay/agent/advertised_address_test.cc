#include "media-relay/agent/advertised_address.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/net/ip_address.h"
#include "common/net/socket_address.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "media-relay/stun/stun_message.h"

namespace latchkey::relay {
namespace {

using ::testing::HasSubstr;
using Kind = AdvertisedAddressSpec::Kind;

net::IpAddress Ip(const std::string& text) { return net::IpAddress::Parse(text).value(); }

// A STUN server on 127.0.0.1 answering every Binding request with `mapped()`:port 1.
class MiniStunServer {
 public:
  explicit MiniStunServer(net::IpAddress mapped) : mapped_(mapped) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_storage address = net::IpAddress::V4(127, 0, 0, 1).ToSockaddr(0);
    socklen_t length = sizeof(sockaddr_in);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0) return;
    length = sizeof(address);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = net::SocketAddress::FromSockaddr(address)->port;
    thread_ = std::thread([this] { Serve(); });
  }
  ~MiniStunServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  void set_mapped(const net::IpAddress& ip) {
    absl::MutexLock lock(&mu_);
    mapped_ = ip;
  }

 private:
  void Serve() {
    uint8_t buffer[1500];
    while (!stop_) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, 20) <= 0) continue;
      sockaddr_storage from{};
      socklen_t from_length = sizeof(from);
      const ssize_t n = ::recvfrom(fd_, buffer, sizeof(buffer), 0, reinterpret_cast<sockaddr*>(&from), &from_length);
      const auto request = n > 0 ? stun::Parse(buffer, static_cast<size_t>(n)) : std::nullopt;
      if (!request || request->type != stun::kBindingRequest) continue;
      net::IpAddress mapped;
      {
        absl::MutexLock lock(&mu_);
        mapped = mapped_;
      }
      const auto reply = stun::BindingSuccess(request->transaction_id, {mapped, 1});
      ::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), from_length);
    }
  }

  absl::Mutex mu_;
  net::IpAddress mapped_ ABSL_GUARDED_BY(mu_);
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// Parsing

TEST(AdvertisedAddressSpecTest, ParsesTheFourForms) {
  auto literal = AdvertisedAddressSpec::Parse("203.0.113.10");
  ASSERT_TRUE(literal.ok()) << literal.status();
  EXPECT_EQ(literal->kind, Kind::kLiteral);
  EXPECT_EQ(literal->literal, Ip("203.0.113.10"));
  EXPECT_FALSE(literal->refreshable());

  auto v6 = AdvertisedAddressSpec::Parse("[2001:db8::10]");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(v6->literal, Ip("2001:db8::10"));
  EXPECT_EQ(v6->ToString(), "2001:db8::10");

  for (const char* text : {"auto", "AUTO", "Auto"}) {
    auto spec = AdvertisedAddressSpec::Parse(text);
    ASSERT_TRUE(spec.ok()) << text;
    EXPECT_EQ(spec->kind, Kind::kAuto);
    EXPECT_EQ(spec->ToString(), "auto");
    EXPECT_FALSE(spec->refreshable());
  }

  auto host = AdvertisedAddressSpec::Parse("host:relay-1.example.com");
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->kind, Kind::kHost);
  EXPECT_EQ(host->target, "relay-1.example.com");
  EXPECT_EQ(host->ToString(), "host:relay-1.example.com");
  EXPECT_TRUE(host->refreshable());
  EXPECT_EQ(AdvertisedAddressSpec::Parse("HOST:x")->kind, Kind::kHost);

  for (const char* server : {"stun.example.com", "stun.example.com:19302", "192.0.2.1", "[2001:db8::1]:3478"}) {
    auto stun = AdvertisedAddressSpec::Parse(absl::StrCat("stun:", server));
    ASSERT_TRUE(stun.ok()) << server << ": " << stun.status();
    EXPECT_EQ(stun->kind, Kind::kStun);
    EXPECT_EQ(stun->target, server);
    EXPECT_EQ(stun->ToString(), absl::StrCat("stun:", server));
    EXPECT_TRUE(stun->refreshable());
  }
}

TEST(AdvertisedAddressSpecTest, RejectsBadSpecsNamingTheForms) {
  for (const char* bad : {"", "foo", "1.2.3.4.5", "host:", "host:bad name", "host:a/b", "stun:", "stun:host:0",
                          "stun:[::1", "stun:a b", "auto:", "dns:relay.example.com", " 1.2.3.4"}) {
    auto spec = AdvertisedAddressSpec::Parse(bad);
    ASSERT_FALSE(spec.ok()) << bad;
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(spec.status().message(), HasSubstr("\"stun:HOST[:PORT]\"")) << bad;
  }
  EXPECT_THAT(AdvertisedAddressSpec::Parse("foo\n").status().message(), HasSubstr("\"foo\\n\""));
}

// ---------------------------------------------------------------------------------------------
// Resolve

TEST(AdvertisedAddressResolveTest, LiteralIsItself) {
  auto ip = Resolve(*AdvertisedAddressSpec::Parse("203.0.113.10"), Ip("10.0.0.5"));
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(*ip, Ip("203.0.113.10"));
}

TEST(AdvertisedAddressResolveTest, AutoWithASpecificBindIsTheBind) {
  auto ip = Resolve(*AdvertisedAddressSpec::Parse("auto"), Ip("127.0.0.1"));
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(*ip, Ip("127.0.0.1"));
}

TEST(AdvertisedAddressResolveTest, AutoWithAWildcardBindIsTheRouteSource) {
  // connect() on UDP sends nothing; it only asks the kernel for a route and a source address.
  for (const char* wildcard : {"0.0.0.0", "::"}) {
    const net::IpAddress bind = Ip(wildcard);
    auto ip = Resolve(*AdvertisedAddressSpec::Parse("auto"), bind);
    if (!ip.ok()) {
      EXPECT_EQ(ip.status().code(), absl::StatusCode::kUnavailable) << ip.status();
      EXPECT_THAT(ip.status().message(), HasSubstr("route")) << ip.status();
      continue;  // no default route of this family here
    }
    EXPECT_EQ(ip->family(), bind.family()) << wildcard;
    EXPECT_FALSE(ip->IsUnspecified()) << wildcard << " -> " << ip->ToString();
  }
}

TEST(AdvertisedAddressResolveTest, HostLocalhost) {
  auto ip = Resolve(*AdvertisedAddressSpec::Parse("host:localhost"), Ip("127.0.0.1"));
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(*ip, Ip("127.0.0.1"));
}

TEST(AdvertisedAddressResolveTest, HostLiteralOfTheOtherFamilyIsInvalid) {
  // An IPv6 name has colons: host: takes names (and IPv4 literals) only.
  EXPECT_FALSE(AdvertisedAddressSpec::Parse("host:2001:db8::1").ok());
  auto v4 = Resolve(*AdvertisedAddressSpec::Parse("host:192.0.2.1"), Ip("::1"));
  ASSERT_FALSE(v4.ok());
  EXPECT_EQ(v4.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v4.status().message(), HasSubstr("\"192.0.2.1\" is not an IPv6 address"));
}

TEST(AdvertisedAddressResolveTest, StunAgainstALoopbackServer) {
  MiniStunServer server(Ip("198.51.100.20"));
  auto ip = Resolve(*AdvertisedAddressSpec::Parse(absl::StrCat("stun:", server.address())), Ip("127.0.0.1"));
  ASSERT_TRUE(ip.ok()) << ip.status();
  EXPECT_EQ(*ip, Ip("198.51.100.20"));
}

TEST(AdvertisedAddressResolveTest, StunWithoutServerIsUnavailable) {
  // Port 9 (discard) on loopback: nothing listens, the kernel answers port unreachable.
  auto ip = Resolve(*AdvertisedAddressSpec::Parse("stun:127.0.0.1:9"), Ip("127.0.0.1"), absl::Seconds(1));
  ASSERT_FALSE(ip.ok());
  EXPECT_EQ(ip.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(ip.status().message(), HasSubstr("STUN server 127.0.0.1:9: port unreachable"));
}

// ---------------------------------------------------------------------------------------------
// AdvertisedAddressRefresher

// A resolver that hands out queued answers per spec text, and counts calls.
class FakeResolver {
 public:
  void Push(const std::string& spec, absl::StatusOr<net::IpAddress> answer) {
    absl::MutexLock lock(&mu_);
    answers_[spec].push_back(std::move(answer));
  }
  int calls(const std::string& spec) {
    absl::MutexLock lock(&mu_);
    return calls_[spec];
  }
  AdvertisedAddressRefresher::Resolver AsResolver() {
    return [this](const AdvertisedAddressSpec& spec, const net::IpAddress&) -> absl::StatusOr<net::IpAddress> {
      absl::MutexLock lock(&mu_);
      const std::string key = spec.ToString();
      ++calls_[key];
      auto& queue = answers_[key];
      if (queue.empty()) return absl::UnavailableError("no answer queued");
      auto answer = queue.front();
      if (queue.size() > 1) queue.pop_front();  // the last answer repeats
      return answer;
    };
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, std::deque<absl::StatusOr<net::IpAddress>>> answers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
};

std::vector<AdvertisedAddressRefresher::Entry> Entries() {
  return {{*AdvertisedAddressSpec::Parse("203.0.113.1"), Ip("10.0.0.1"), Ip("203.0.113.1")},
          {*AdvertisedAddressSpec::Parse("host:relay.example.com"), Ip("10.0.0.2"), Ip("203.0.113.2")},
          {*AdvertisedAddressSpec::Parse("stun:stun.example.com"), Ip("10.0.0.3"), Ip("203.0.113.3")}};
}

struct Change {
  size_t index;
  net::IpAddress old_address;
  net::IpAddress new_address;
};

TEST(AdvertisedAddressRefresherTest, RefreshReportsChangesAndKeepsValuesOnFailure) {
  FakeResolver fake;
  fake.Push("host:relay.example.com", Ip("203.0.113.2"));          // unchanged
  fake.Push("host:relay.example.com", Ip("203.0.113.22"));         // changed
  fake.Push("stun:stun.example.com", absl::UnavailableError("x"));  // failure, then a change
  fake.Push("stun:stun.example.com", Ip("203.0.113.33"));
  std::vector<Change> changes;
  AdvertisedAddressRefresher refresher(
      Entries(), {absl::Hours(1),
                  [&](size_t i, const net::IpAddress& o, const net::IpAddress& n) { changes.push_back({i, o, n}); },
                  fake.AsResolver()});
  EXPECT_EQ(refresher.size(), 3u);
  EXPECT_EQ(refresher.CurrentAll(),
            (std::vector<net::IpAddress>{Ip("203.0.113.1"), Ip("203.0.113.2"), Ip("203.0.113.3")}));

  refresher.RefreshNow();  // host unchanged, stun fails
  EXPECT_TRUE(changes.empty());
  EXPECT_EQ(refresher.Current(2), Ip("203.0.113.3"));

  refresher.RefreshNow();  // both change
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].index, 1u);
  EXPECT_EQ(changes[0].old_address, Ip("203.0.113.2"));
  EXPECT_EQ(changes[0].new_address, Ip("203.0.113.22"));
  EXPECT_EQ(changes[1].index, 2u);
  EXPECT_EQ(changes[1].new_address, Ip("203.0.113.33"));
  EXPECT_EQ(refresher.CurrentAll(),
            (std::vector<net::IpAddress>{Ip("203.0.113.1"), Ip("203.0.113.22"), Ip("203.0.113.33")}));

  refresher.RefreshNow();  // same again: no new change
  EXPECT_EQ(changes.size(), 2u);
  EXPECT_EQ(fake.calls("203.0.113.1"), 0) << "literals are never re-resolved";
  EXPECT_EQ(fake.calls("host:relay.example.com"), 3);
}

TEST(AdvertisedAddressRefresherTest, ThreadRefreshesPeriodically) {
  FakeResolver fake;
  fake.Push("host:relay.example.com", Ip("203.0.113.99"));
  absl::Notification changed;
  AdvertisedAddressRefresher refresher(
      Entries(), {absl::Milliseconds(20),
                  [&](size_t i, const net::IpAddress&, const net::IpAddress& n) {
                    if (i == 1 && n == Ip("203.0.113.99") && !changed.HasBeenNotified()) changed.Notify();
                  },
                  fake.AsResolver()});
  refresher.Start();
  EXPECT_TRUE(refresher.running());
  ASSERT_TRUE(changed.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_EQ(refresher.Current(1), Ip("203.0.113.99"));
  // Readers from another thread meanwhile.
  std::thread reader([&] {
    for (int i = 0; i < 100; ++i) EXPECT_EQ(refresher.Current(0), Ip("203.0.113.1"));
  });
  reader.join();
  refresher.Stop();
  EXPECT_FALSE(refresher.running());
  const int calls = fake.calls("host:relay.example.com");
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(fake.calls("host:relay.example.com"), calls) << "no refresh after Stop()";
}

TEST(AdvertisedAddressRefresherTest, StopIsPromptAndStaticEntriesStartNoThread) {
  FakeResolver fake;
  AdvertisedAddressRefresher refresher(Entries(), {absl::Hours(1), nullptr, fake.AsResolver()});
  refresher.Start();
  EXPECT_TRUE(refresher.running());
  const absl::Time start = absl::Now();
  refresher.Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));

  AdvertisedAddressRefresher static_only({{*AdvertisedAddressSpec::Parse("auto"), Ip("127.0.0.1"), Ip("127.0.0.1")}},
                                         {absl::Milliseconds(1), nullptr, nullptr});
  static_only.Start();
  EXPECT_FALSE(static_only.running());
}

TEST(AdvertisedAddressRefresherTest, RealStunRediscovery) {
  MiniStunServer server(Ip("198.51.100.1"));
  const auto spec = *AdvertisedAddressSpec::Parse(absl::StrCat("stun:", server.address()));
  auto first = Resolve(spec, Ip("127.0.0.1"));
  ASSERT_TRUE(first.ok()) << first.status();
  std::vector<Change> changes;
  AdvertisedAddressRefresher refresher({{spec, Ip("127.0.0.1"), *first}},
                                       {absl::Hours(1),
                                        [&](size_t i, const net::IpAddress& o, const net::IpAddress& n) {
                                          changes.push_back({i, o, n});
                                        },
                                        nullptr});
  server.set_mapped(Ip("198.51.100.2"));
  refresher.RefreshNow();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].old_address, Ip("198.51.100.1"));
  EXPECT_EQ(changes[0].new_address, Ip("198.51.100.2"));
  EXPECT_EQ(refresher.Current(0), Ip("198.51.100.2"));
}

}  // namespace
}  // namespace latchkey::relay
