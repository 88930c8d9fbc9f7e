#pragma once
// latchkey-relay assembled: advertised addresses, the port pool, the packet engine and its session
// table, keepalives, the STUN responder, RelayService on its gRPC port (plus an optional plaintext
// health port), /metrics, the client that keeps this worker registered with control, and a sampler
// for the load gauges. The binary's main() only merges flags into the config and waits for a signal.
#include <memory>
#include <optional>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "common/grpc/auth.h"
#include "common/grpc/server.h"
#include "common/metrics/metrics_server.h"
#include "latchkey/v1/config.pb.h"
#include "media-relay/agent/advertised_address.h"
#include "media-relay/agent/control_client.h"
#include "media-relay/agent/relay_service.h"
#include "media-relay/engine/packet_engine.h"
#include "media-relay/fastpath/fast_path.h"
#include "media-relay/keepalive/keepalive_sender.h"
#include "media-relay/metrics/relay_metrics.h"
#include "media-relay/sessions/session_table.h"
#include "media-relay/stun/stun_server.h"
#include "prometheus/registry.h"

namespace latchkey::relay {

// Fills the fields a config file and flags left unset that have a default not given by a flag
// (packet threads: one per core; worker id: the host name; keepalive mode; request size limit; TLS).
void ApplyDefaults(v1::RelayConfig* config);

class RelayServer {
 public:
  // Validates the config (INVALID_ARGUMENT naming the field), discovers the advertised addresses
  // (UNAVAILABLE when that fails), starts everything and is SERVING when it returns; control is
  // dialled in the background.
  static absl::StatusOr<std::unique_ptr<RelayServer>> Start(v1::RelayConfig config);
  ~RelayServer();  // Shutdown()

  int grpc_port() const { return grpc_.port; }
  int health_port() const { return health_ ? health_->port : 0; }
  int metrics_port() const { return metrics_server_->port(); }
  int stun_port() const;  // 0 when off
  const v1::RelayConfig& config() const { return config_; }
  const SessionTable& sessions() const { return *sessions_; }
  const PacketEngine& engine() const { return *engine_; }

  // What SIGTERM does: refuse new sessions, report not ready (to control at once, and on the health
  // ports) and wait until the sessions have ended or `drain_grace` has passed.
  void Drain();
  // Stops everything; sessions still open are counted as closed by the drain.
  void Shutdown();

 private:
  RelayServer() = default;
  absl::Status Assemble();
  // Samples the load gauges (the port pool is shared state: not on every change) and process CPU.
  void SampleLoop();
  void OnAdvertisedChange(size_t index, const net::IpAddress& now);

  v1::RelayConfig config_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<RelayMetrics> relay_metrics_;
  std::unique_ptr<AdvertisedAddressRefresher> advertised_;
  // Outlives the engine, whose packet threads write its entries.
  std::unique_ptr<FastPath> fast_path_;
  // Before the engine and the keepalive sender, which report to it, and destroyed after them.
  std::unique_ptr<ControlClient> control_;
  std::unique_ptr<PacketEngine> engine_;
  std::unique_ptr<SessionTable> sessions_;
  std::unique_ptr<KeepaliveSender> keepalives_;
  std::unique_ptr<grpcutil::Gate> gate_;
  std::unique_ptr<RelayServiceImpl> relay_service_;
  std::unique_ptr<StunServer> stun_server_;
  grpcutil::StartedServer grpc_;
  std::optional<grpcutil::StartedServer> health_;
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
  prometheus::Counter* cpu_seconds_ = nullptr;
  absl::Notification stop_sampling_;
  std::thread sampler_;
  bool shut_down_ = false;
};

}  // namespace latchkey::relay
