#pragma once
// Real latchkey-control and latchkey-relay processes on loopback, on free ports, for integration
// tests, with mutual TLS from the test CA (support/pki.h) on every hop. Each test gets its own,
// stopped when the object goes away.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/auth/identity.h"
#include "common/grpc/tls.h"
#include "grpcpp/grpcpp.h"
#include "latchkey/v1/nat_control.grpc.pb.h"
#include "tests/integration/support/pki.h"
#include "tests/integration/support/process.h"

namespace latchkey::testing {

// Waits until the gRPC server at `address` says SERVING for service "" (grpc.health.v1); over TLS
// from `tls` (when set) to a server that must be `peer`.
absl::Status WaitForServing(const std::string& address, absl::Duration timeout, const v1::TlsConfig& tls = {},
                            const grpcutil::ExpectedPeer& peer = {});
// Polls `condition` every 20 ms until true or `timeout`.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout);
// A fresh scratch directory under /tmp for one test (removed by the caller's fixture if wanted).
std::string ScratchDir(const std::string& name);

// Control's three ports; 0 picks a free one. Reuse them to restart a control where relays find it.
struct ControlPorts {
  int grpc = 0;
  int worker = 0;
  int metrics = 0;
  static ControlPorts Free();
};

class LocalControl {
 public:
  // `config_text`: extra ControlConfig text-proto fields (listen addresses and TLS are set here).
  static absl::StatusOr<std::unique_ptr<LocalControl>> Start(const std::string& config_text = "",
                                                             ControlPorts ports = {});
  ~LocalControl();

  // The PBX/operator API (NatControlService).
  std::string address() const { return "127.0.0.1:" + std::to_string(ports_.grpc); }
  // The worker API (WorkerRegistryService), what relays dial.
  std::string worker_address() const { return "127.0.0.1:" + std::to_string(ports_.worker); }
  int grpc_port() const { return ports_.grpc; }
  int metrics_port() const { return ports_.metrics; }
  const ControlPorts& ports() const { return ports_; }
  ChildProcess& process() { return process_; }
  // A client of the PBX/operator API as the operator ("operator/test"), who may call everything.
  std::unique_ptr<v1::NatControlService::Stub> Stub() const;
  // ... or as `role`/`name` (a certificate from the test CA).
  std::unique_ptr<v1::NatControlService::Stub> Stub(auth::Role role, const std::string& name) const;
  std::shared_ptr<grpc::Channel> Channel(const std::string& address, auth::Role role, const std::string& name) const;
  // Scrapes /metrics; empty on failure.
  std::string Metrics() const;

 private:
  LocalControl() = default;
  ChildProcess process_;
  ControlPorts ports_;
  std::string dir_;
};

class LocalRelay {
 public:
  // Registers with `control` (with a worker certificate for `worker_id`). Keepalives to loopback
  // are allowed (the tests' phones live there), at intervals down to 1 s. `extra_flags` are appended, so they can undo that.
  static absl::StatusOr<std::unique_ptr<LocalRelay>> Start(const LocalControl& control,
                                                           const std::string& worker_id,
                                                           const std::vector<std::string>& extra_flags = {},
                                                           int port_count = 200);
  ~LocalRelay();

  const std::string& worker_id() const { return worker_id_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  int port_min() const { return port_min_; }
  // WaitForServing on its RelayService port, as control (over mutual TLS).
  absl::Status WaitForServing(absl::Duration timeout) const;
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

// The address of the first c= line and the port of the first m=audio line of an SDP.
struct SdpMedia {
  std::string address;
  int port = 0;
};
SdpMedia FirstMedia(const std::string& sdp);

// A phone's SDP: one PCMU audio stream (with telephone-event) at `ip`:`port`, then `extra` lines.
std::string AudioSdp(const std::string& ip, int port, const std::string& extra = "");

}  // namespace latchkey::testing
