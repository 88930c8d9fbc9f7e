// latchkey-control: the gRPC control plane a PBX calls for NAT bindings and relay sessions.
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/config/flags.h"
#include "common/config/proto_file.h"
#include "common/grpc/tls_flags.h"
#include "common/log/log.h"
#include "common/process/malloc_arenas.h"
#include "common/process/mutex_mode.h"
#include "common/process/signals.h"
#include "services/control/control_server.h"

ABSL_FLAG(std::string, config, "", "ControlConfig file (text proto, or JSON if it ends in .json)");
ABSL_FLAG(std::string, listen, "127.0.0.1:7400", "gRPC listen address of the NatControlService (PBXs, operators)");
ABSL_FLAG(std::string, worker_listen, "127.0.0.1:7401", "gRPC listen address of the WorkerRegistryService (relays)");
ABSL_FLAG(std::string, health_listen, "", "plaintext grpc.health.v1-only listen address for probes (empty: off)");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9400", "Prometheus /metrics listen address");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
ABSL_FLAG(std::string, store, "memory",
          "Where bindings and sessions live: memory, redis://HOST:PORT or redis+sentinel://HOST:PORT[,HOST:PORT...]/MASTER_NAME");

ABSL_FLAG(std::string, ng_listen, "",
          "UDP HOST:PORT of the rtpengine ng protocol front door for Kamailio/OpenSIPS (empty: off)");
ABSL_FLAG(std::vector<std::string>, ng_allow, {},
          "comma-separated CIDRs whose ng requests are served (empty: loopback only)");
ABSL_FLAG(std::string, ng_identity, "", "PBX identity that ng sessions belong to (default: ng)");

int main(int argc, char** argv) {
  using namespace latchkey;
  process::BlockTerminationSignals();
  process::DisableMutexDeadlockDetection();
  process::LimitMallocArenas();
  absl::SetProgramUsageMessage("latchkey-control: SIP/RTP NAT traversal control plane");
  absl::ParseCommandLine(argc, argv);
  if (log::Level level; log::ParseLevel(absl::GetFlag(FLAGS_log_level), &level)) log::SetMinLevel(level);

  v1::ControlConfig config;
  if (const std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    if (absl::Status s = config::LoadProtoFile(path, &config); !s.ok()) {
      log::LogError("invalid configuration").Kv("error", s.ToString());
      return 2;
    }
  }
  if (config::FlagGiven(FLAGS_listen) || config.listen().empty()) config.set_listen(absl::GetFlag(FLAGS_listen));
  if (config::FlagGiven(FLAGS_worker_listen) || config.worker_listen().empty()) {
    config.set_worker_listen(absl::GetFlag(FLAGS_worker_listen));
  }
  if (config::FlagGiven(FLAGS_health_listen)) config.set_health_listen(absl::GetFlag(FLAGS_health_listen));
  grpcutil::ApplyTlsFlags(config.mutable_tls());
  if (config::FlagGiven(FLAGS_store)) config.set_store(absl::GetFlag(FLAGS_store));
  if (config::FlagGiven(FLAGS_metrics_listen) || config.metrics_listen().empty()) {
    config.set_metrics_listen(absl::GetFlag(FLAGS_metrics_listen));
  }

  if (config::FlagGiven(FLAGS_ng_listen)) config.mutable_ng()->set_listen(absl::GetFlag(FLAGS_ng_listen));
  if (config::FlagGiven(FLAGS_ng_allow)) {
    config.mutable_ng()->clear_allow();
    for (const std::string& cidr : absl::GetFlag(FLAGS_ng_allow)) config.mutable_ng()->add_allow(cidr);
  }
  if (config::FlagGiven(FLAGS_ng_identity)) config.mutable_ng()->set_identity(absl::GetFlag(FLAGS_ng_identity));

  auto server = control::ControlServer::Start(config);
  if (!server.ok()) {
    log::LogError("cannot start").Kv("error", server.status().ToString());
    return absl::IsInvalidArgument(server.status()) ? 2 : 1;
  }
  log::LogInfo("latchkey-control ready")
      .Kv("listen", config.listen())
      .Kv("grpc_port", (*server)->grpc_port())
      .Kv("worker_grpc_port", (*server)->worker_grpc_port())
      .Kv("tls", !config.tls().cert_file().empty())
      .Kv("metrics_port", (*server)->metrics_port())
      .Kv("ng_port", (*server)->ng_port())
      .Kv("store", (*server)->store());
  const int signal = process::WaitForTerminationSignal();
  log::LogInfo("shutting down").Kv("signal", signal);
  (*server)->Shutdown();
  return 0;
}
