#pragma once
// latchkey-control assembled: stores, NAT detector, worker registry, binding and session managers,
// the change-log feeds, the two gRPC services on their own ports, /metrics, and the sweep loop: it
// renews the leader lease, declares silent workers lost and, while leading, expires bindings and
// sessions.
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "common/grpc/server.h"
#include "common/metrics/metrics_server.h"
#include "latchkey/v1/config.pb.h"
#include "services/control/api/nat_control_service.h"
#include "services/control/api/worker_registry_service.h"
#include "services/control/bindings/binding_manager.h"
#include "services/control/events/event_feed.h"
#include "services/control/keepalive/keepalive_assigner.h"
#include "services/control/leader/leadership.h"
#include "services/control/ng/commands.h"
#include "services/control/ng/ng_metrics.h"
#include "services/control/ng/ng_server.h"
#include "services/control/sessions/relay_sessions.h"
#include "services/control/sessions/session_manager.h"
#include "services/control/sessions/session_sweeper.h"
#include "services/control/sessions/session_writer.h"
#include "services/control/sessions/worker_sessions.h"
#include "services/control/store/open_stores.h"

namespace latchkey::control {

// Fills unset fields with their documented defaults.
void ApplyDefaults(v1::ControlConfig* config);

class ControlServer {
 public:
  // Validates the config (INVALID_ARGUMENT naming the field), binds both ports, and is ready (health
  // SERVING) when it returns.
  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(v1::ControlConfig config);
  ~ControlServer();

  int grpc_port() const { return grpc_.port; }
  int worker_grpc_port() const { return worker_grpc_.port; }
  int health_port() const { return health_grpc_.port; }
  int metrics_port() const { return metrics_server_->port(); }
  // The ng front door's UDP port; 0 when off.
  int ng_port() const { return ng_server_ ? ng_server_->port() : 0; }
  // "memory", or the Redis target the bindings are shared on.
  const std::string& store() const { return stores_.description; }
  void Shutdown();

 private:
  ControlServer() = default;
  void SweepLoop();

  v1::ControlConfig config_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<ControlMetrics> metrics_;
  Stores stores_;
  std::unique_ptr<NatDetector> detector_;
  std::unique_ptr<WorkerRegistry> workers_;
  std::unique_ptr<Leadership> leadership_;
  std::unique_ptr<EventFeed<BindingLogEntry>> binding_events_;
  std::unique_ptr<EventFeed<SessionEvent>> session_events_;
  std::unique_ptr<BindingManager> bindings_;
  std::unique_ptr<RelaySessions> relay_sessions_;
  std::unique_ptr<SessionWriter> session_writer_;
  std::unique_ptr<SessionManager> sessions_;
  std::unique_ptr<WorkerSessions> worker_sessions_;
  std::unique_ptr<SessionSweeper> session_sweeper_;
  std::unique_ptr<KeepaliveAssigner> keepalives_;
  std::unique_ptr<NatControlServiceImpl> nat_service_;
  std::unique_ptr<WorkerRegistryServiceImpl> worker_service_;
  std::unique_ptr<WatchLimits> watch_limits_;
  std::unique_ptr<grpcutil::Gate> gate_;
  std::unique_ptr<ng::NgMetrics> ng_metrics_;
  std::unique_ptr<ng::CommandHandler> ng_handler_;
  std::unique_ptr<ng::NgServer> ng_server_;
  grpcutil::StartedServer grpc_;         // NatControlService
  grpcutil::StartedServer worker_grpc_;  // WorkerRegistryService
  grpcutil::StartedServer health_grpc_;  // plaintext health for probes (optional)
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
  absl::Notification stop_;
  std::thread sweeper_;
  bool shut_down_ = false;
};

}  // namespace latchkey::control
