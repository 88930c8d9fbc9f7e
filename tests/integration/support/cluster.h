#pragma once
// Real latchkey-control and latchkey-relay processes on loopback, on free ports, for integration
// tests. Each test gets its own, stopped when the object goes away.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "latchkey/v1/nat_control.grpc.pb.h"
#include "tests/integration/support/process.h"

namespace latchkey::testing {

// Waits until the gRPC server at `address` says SERVING for service "" (grpc.health.v1).
absl::Status WaitForServing(const std::string& address, absl::Duration timeout);
// Polls `condition` every 20 ms until true or `timeout`.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout);
// A fresh scratch directory under /tmp for one test (removed by the caller's fixture if wanted).
std::string ScratchDir(const std::string& name);

class LocalControl {
 public:
  // `config_text`: extra ControlConfig text-proto fields (listen addresses are set here).
  static absl::StatusOr<std::unique_ptr<LocalControl>> Start(const std::string& config_text = "",
                                                             int grpc_port = 0, int metrics_port = 0);
  ~LocalControl();

  std::string address() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  ChildProcess& process() { return process_; }
  std::unique_ptr<v1::NatControlService::Stub> Stub() const;
  // Scrapes /metrics; empty on failure.
  std::string Metrics() const;

 private:
  LocalControl() = default;
  ChildProcess process_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  std::string dir_;
};

class LocalRelay {
 public:
  // Registers with control at `control_address`. `extra_flags` are appended.
  static absl::StatusOr<std::unique_ptr<LocalRelay>> Start(const std::string& control_address,
                                                           const std::string& worker_id,
                                                           const std::vector<std::string>& extra_flags = {},
                                                           int port_count = 200);
  ~LocalRelay();

  const std::string& worker_id() const { return worker_id_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  int port_min() const { return port_min_; }
  // Scrapes the relay's /metrics; empty on failure.
  std::string Metrics() const;
  int port_max() const { return port_max_; }
  ChildProcess& process() { return process_; }

 private:
  LocalRelay() = default;
  ChildProcess process_;
  std::string worker_id_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  int port_min_ = 0;
  int port_max_ = 0;
};

inline v1::SocketAddress Address(const std::string& ip, uint32_t port) {
  v1::SocketAddress address;
  address.set_ip(ip);
  address.set_port(port);
  return address;
}

// Waits until control lists `worker_id` as READY.
bool WaitForWorker(v1::NatControlService::Stub& stub, const std::string& worker_id, absl::Duration timeout);

// The value of one Prometheus series (name with labels, exactly as exposed); -1 when absent.
double MetricValue(const std::string& metrics, const std::string& series);

// A phone's SDP: one PCMU audio stream (with telephone-event) at `ip`:`port`, then `extra` lines.
std::string AudioSdp(const std::string& ip, int port, const std::string& extra = "");

}  // namespace latchkey::testing
