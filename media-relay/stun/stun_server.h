#pragma once
// The relay's STUN Binding responder (UDP, 3478 by default): phones behind NAT ask it for their
// public address ("enable STUN on your SIP client"), and relays can discover their own with
// `--advertised_ip=stun:...` against another relay. One thread; requests are answered in batches.
#include <atomic>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "common/net/socket_address.h"
#include "media-relay/ports/udp_socket.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace latchkey::relay {

class StunServer {
 public:
  // Binds `listen` (UNAVAILABLE if taken).
  static absl::StatusOr<std::unique_ptr<StunServer>> Start(const net::SocketAddress& listen,
                                                           prometheus::Registry& registry);
  ~StunServer();
  uint16_t port() const { return port_; }

 private:
  StunServer(UdpSocket socket, prometheus::Registry& registry);
  void Run();

  UdpSocket socket_;
  uint16_t port_ = 0;
  std::atomic<bool> running_{true};
  prometheus::Counter* answered_;
  prometheus::Counter* refused_;
  prometheus::Counter* send_errors_;
  std::thread thread_;
};

}  // namespace latchkey::relay
