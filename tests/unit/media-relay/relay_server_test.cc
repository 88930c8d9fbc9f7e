#include "media-relay/relay_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace latchkey::relay {
namespace {

// A relay on loopback with every port picked by the kernel; control is never reachable.
v1::RelayConfig LoopbackConfig() {
  v1::RelayConfig config;
  config.set_listen("127.0.0.1:0");
  config.set_metrics_listen("127.0.0.1:0");
  config.set_control("127.0.0.1:1");
  config.set_worker_id("relay-server-test");
  config.add_media_bind_ips("127.0.0.1");
  config.set_port_min(46000);
  config.set_port_max(46099);
  config.set_max_sessions(10);
  config.set_threads(1);
  config.set_keepalives_off(true);
  config.set_stun_listen("off");
  config.mutable_drain_grace()->set_seconds(0);
  return config;
}

bool TcpPortOpen(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool open = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return open;
}

TEST(RelayDefaultsTest, FillsWhatNoFlagGives) {
  v1::RelayConfig config;
  ApplyDefaults(&config);
  EXPECT_GE(config.threads(), 1u);
  EXPECT_FALSE(config.worker_id().empty());
  EXPECT_EQ(config.keepalive_mode(), v1::KEEPALIVE_SOURCE_MODE_REGISTRAR_SOURCE);
  EXPECT_EQ(config.packet_io(), v1::PACKET_IO_AUTO);
  EXPECT_EQ(config.max_request_bytes(), 16u << 20);
}

TEST(RelayDefaultsTest, KeepsWhatTheConfigSays) {
  v1::RelayConfig config;
  config.set_threads(3);
  config.set_worker_id("w1");
  config.set_keepalive_mode(v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET);
  ApplyDefaults(&config);
  EXPECT_EQ(config.threads(), 3u);
  EXPECT_EQ(config.worker_id(), "w1");
  EXPECT_EQ(config.keepalive_mode(), v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET);
}

TEST(RelayServerTest, RefusesABadConfigNamingTheField) {
  struct Case {
    const char* field;
    void (*spoil)(v1::RelayConfig&);
  } cases[] = {
      {"media_bind_ips", [](v1::RelayConfig& c) { c.clear_media_bind_ips(); }},
      {"media_bind_ips[0]", [](v1::RelayConfig& c) { c.set_media_bind_ips(0, "not-an-ip"); }},
      {"advertised", [](v1::RelayConfig& c) {
         c.add_advertised("1.2.3.4");
         c.add_advertised("1.2.3.5");
       }},
      {"stun_listen", [](v1::RelayConfig& c) { c.set_stun_listen("nowhere"); }},
      {"keepalive_listen", [](v1::RelayConfig& c) {
         c.set_keepalives_off(false);
         c.set_keepalive_mode(v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET);
         c.set_keepalive_listen("0.0.0.0:0");
       }},
  };
  for (const Case& c : cases) {
    v1::RelayConfig config = LoopbackConfig();
    c.spoil(config);
    auto server = RelayServer::Start(config);
    ASSERT_FALSE(server.ok()) << c.field;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << c.field << ": " << server.status();
    EXPECT_NE(server.status().message().find(c.field), absl::string_view::npos) << server.status();
  }
}

TEST(RelayServerTest, StartsServingAndShutsDownLeavingNoPortOpen) {
  auto server = RelayServer::Start(LoopbackConfig());
  ASSERT_TRUE(server.ok()) << server.status();
  const int grpc_port = (*server)->grpc_port();
  const int metrics_port = (*server)->metrics_port();
  EXPECT_GT(grpc_port, 0);
  EXPECT_GT(metrics_port, 0);
  EXPECT_EQ((*server)->stun_port(), 0);  // off
  EXPECT_TRUE(TcpPortOpen(grpc_port));
  EXPECT_TRUE(TcpPortOpen(metrics_port));
  EXPECT_FALSE((*server)->sessions().draining());

  const absl::Time started = absl::Now();
  (*server)->Drain();  // no sessions: returns at once, whatever the grace
  EXPECT_LT(absl::Now() - started, absl::Seconds(2));
  EXPECT_TRUE((*server)->sessions().draining());
  server->reset();
  EXPECT_FALSE(TcpPortOpen(grpc_port));
  EXPECT_FALSE(TcpPortOpen(metrics_port));
}

}  // namespace
}  // namespace latchkey::relay
