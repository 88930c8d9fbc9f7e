// latchkey-relay: a media relay worker (media-relay/relay_server.h). Here: flags merged over the
// config file, then run until SIGTERM/SIGINT, draining first.
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/config/flags.h"
#include "common/config/proto_file.h"
#include "common/grpc/tls_flags.h"
#include "common/log/log.h"
#include "common/process/malloc_arenas.h"
#include "common/process/mutex_mode.h"
#include "common/process/signals.h"
#include "common/time/proto_time.h"
#include "latchkey/v1/config.pb.h"
#include "media-relay/relay_server.h"

ABSL_FLAG(std::string, config, "", "RelayConfig file (text proto, or JSON if it ends in .json)");
ABSL_FLAG(std::string, listen, "127.0.0.1:7410", "gRPC listen address (RelayService, health, reflection)");
ABSL_FLAG(std::string, health_listen, "", "plaintext grpc.health.v1-only listen address for probes (empty: off)");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9410", "Prometheus /metrics listen address");
ABSL_FLAG(std::string, control, "127.0.0.1:7401", "latchkey-control's worker API address (its --worker_listen)");
ABSL_FLAG(std::string, worker_id, "", "Worker id (default: host name)");
ABSL_FLAG(std::string, media_ip, "127.0.0.1", "Comma-separated local addresses media sockets bind to");
ABSL_FLAG(std::string, advertised_ip, "",
          "Comma-separated, one per media_ip, written into SDP: an IP, auto, host:NAME or stun:HOST[:PORT]");
ABSL_FLAG(uint32_t, port_min, 30000, "First media port (even)");
ABSL_FLAG(uint32_t, port_max, 39999, "Last media port");
ABSL_FLAG(uint32_t, max_sessions, 10000, "Maximum sessions");
ABSL_FLAG(uint32_t, threads, 0, "Packet threads (0: one per core)");
ABSL_FLAG(absl::Duration, port_quarantine, absl::Seconds(5), "A released port pair is not reused for this long");
ABSL_FLAG(std::string, grpc_advertise, "", "HOST:PORT control dials to reach this worker");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error");
ABSL_FLAG(std::string, keepalive_mode, "registrar_source",
          "registrar_source (raw sockets, needs CAP_NET_RAW), own_socket, or off");
ABSL_FLAG(std::string, keepalive_listen, "", "own_socket mode: IP:PORT of the SIP socket (default: first media IP, any port)");
ABSL_FLAG(std::string, keepalive_source_ips, "",
          "registrar_source mode: comma-separated registrar IPs this worker may send from (default: all local IPv4)");
ABSL_FLAG(bool, keepalive_allow_private, false,
          "keep alive private, shared (CGNAT) and link-local destinations (a PBX and phones on one LAN)");
ABSL_FLAG(bool, keepalive_allow_loopback, false, "keep alive loopback destinations (tests, one-machine labs)");
ABSL_FLAG(uint32_t, max_keepalive_targets, 1'000'000, "keepalive targets held at most, whatever control asks");
ABSL_FLAG(absl::Duration, min_keepalive_interval, absl::Seconds(5), "shortest keepalive interval, whatever control asks");
ABSL_FLAG(std::string, packet_io, "auto", "auto (io_uring if available, else epoll), epoll or io_uring");
ABSL_FLAG(std::string, fast_path, "off",
          "kernel fast path for latched RTP: off, auto (native XDP, else tc, else off), xdp or tc "
          "(needs CAP_BPF and CAP_NET_ADMIN)");
ABSL_FLAG(std::string, stun_listen, "", "STUN responder IP:PORT, or off (default: first media IP, port 3478)");

namespace latchkey::relay {
namespace {

absl::StatusOr<v1::RelayConfig> LoadConfig() {
  v1::RelayConfig config;
  if (const std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    if (absl::Status s = config::LoadProtoFile(path, &config); !s.ok()) return s;
  }
  using config::FlagGiven;
  if (FlagGiven(FLAGS_listen) || config.listen().empty()) config.set_listen(absl::GetFlag(FLAGS_listen));
  if (FlagGiven(FLAGS_metrics_listen) || config.metrics_listen().empty())
    config.set_metrics_listen(absl::GetFlag(FLAGS_metrics_listen));
  if (FlagGiven(FLAGS_control) || config.control().empty()) config.set_control(absl::GetFlag(FLAGS_control));
  if (FlagGiven(FLAGS_worker_id) || config.worker_id().empty()) config.set_worker_id(absl::GetFlag(FLAGS_worker_id));
  if (FlagGiven(FLAGS_media_ip) || config.media_bind_ips().empty()) {
    config.clear_media_bind_ips();
    for (auto ip : absl::StrSplit(absl::GetFlag(FLAGS_media_ip), ',', absl::SkipEmpty())) config.add_media_bind_ips(std::string(ip));
  }
  if (FlagGiven(FLAGS_advertised_ip)) {
    config.clear_advertised();
    for (auto ip : absl::StrSplit(absl::GetFlag(FLAGS_advertised_ip), ',', absl::SkipEmpty())) config.add_advertised(std::string(ip));
  }
  if (FlagGiven(FLAGS_port_min) || config.port_min() == 0) config.set_port_min(absl::GetFlag(FLAGS_port_min));
  if (FlagGiven(FLAGS_port_max) || config.port_max() == 0) config.set_port_max(absl::GetFlag(FLAGS_port_max));
  if (FlagGiven(FLAGS_max_sessions) || config.max_sessions() == 0) config.set_max_sessions(absl::GetFlag(FLAGS_max_sessions));
  if (FlagGiven(FLAGS_port_quarantine) || !config.has_port_quarantine()) {
    *config.mutable_port_quarantine() = ToProto(absl::GetFlag(FLAGS_port_quarantine));
  }
  if (FlagGiven(FLAGS_threads)) config.set_threads(absl::GetFlag(FLAGS_threads));
  if (FlagGiven(FLAGS_grpc_advertise)) config.set_grpc_advertise(absl::GetFlag(FLAGS_grpc_advertise));
  if (FlagGiven(FLAGS_keepalive_mode) || (config.keepalive_mode() == v1::KEEPALIVE_SOURCE_MODE_UNSPECIFIED &&
                                          !config.keepalives_off())) {
    const std::string mode = absl::GetFlag(FLAGS_keepalive_mode);
    config.set_keepalives_off(mode == "off");
    if (mode == "registrar_source") {
      config.set_keepalive_mode(v1::KEEPALIVE_SOURCE_MODE_REGISTRAR_SOURCE);
    } else if (mode == "own_socket") {
      config.set_keepalive_mode(v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET);
    } else if (mode != "off") {
      return absl::InvalidArgumentError(
          absl::StrCat("keepalive_mode: must be registrar_source, own_socket or off, got \"", mode, "\""));
    }
  }
  if (FlagGiven(FLAGS_keepalive_listen)) config.set_keepalive_listen(absl::GetFlag(FLAGS_keepalive_listen));
  if (FlagGiven(FLAGS_keepalive_source_ips)) {
    config.clear_keepalive_source_ips();
    for (auto ip : absl::StrSplit(absl::GetFlag(FLAGS_keepalive_source_ips), ',', absl::SkipEmpty())) {
      config.add_keepalive_source_ips(std::string(ip));
    }
  }
  if (FlagGiven(FLAGS_keepalive_allow_private)) config.set_keepalive_allow_private(absl::GetFlag(FLAGS_keepalive_allow_private));
  if (FlagGiven(FLAGS_keepalive_allow_loopback)) {
    config.set_keepalive_allow_loopback(absl::GetFlag(FLAGS_keepalive_allow_loopback));
  }
  if (FlagGiven(FLAGS_max_keepalive_targets) || config.max_keepalive_targets() == 0) {
    config.set_max_keepalive_targets(absl::GetFlag(FLAGS_max_keepalive_targets));
  }
  if (FlagGiven(FLAGS_min_keepalive_interval) || !config.has_min_keepalive_interval()) {
    *config.mutable_min_keepalive_interval() = ToProto(absl::GetFlag(FLAGS_min_keepalive_interval));
  }
  if (FlagGiven(FLAGS_health_listen)) config.set_health_listen(absl::GetFlag(FLAGS_health_listen));
  grpcutil::ApplyTlsFlags(config.mutable_tls());
  if (FlagGiven(FLAGS_stun_listen)) config.set_stun_listen(absl::GetFlag(FLAGS_stun_listen));
  if (FlagGiven(FLAGS_packet_io) || config.packet_io() == v1::PACKET_IO_UNSPECIFIED) {
    const std::string io = absl::GetFlag(FLAGS_packet_io);
    if (io == "auto") {
      config.set_packet_io(v1::PACKET_IO_AUTO);
    } else if (io == "epoll") {
      config.set_packet_io(v1::PACKET_IO_EPOLL);
    } else if (io == "io_uring") {
      config.set_packet_io(v1::PACKET_IO_IO_URING);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("packet_io: must be auto, epoll or io_uring, got \"", io, "\""));
    }
  }
  if (FlagGiven(FLAGS_fast_path) || config.fast_path() == v1::FAST_PATH_UNSPECIFIED) {
    const std::string mode = absl::GetFlag(FLAGS_fast_path);
    v1::FastPath parsed;
    if (!v1::FastPath_Parse(absl::StrCat("FAST_PATH_", absl::AsciiStrToUpper(mode)), &parsed) ||
        parsed == v1::FAST_PATH_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat("fast_path: must be off, auto, xdp or tc, got \"", mode, "\""));
    }
    config.set_fast_path(parsed);
  }
  return config;
}

int Main(int argc, char** argv) {
  process::BlockTerminationSignals();
  process::DisableMutexDeadlockDetection();
  process::LimitMallocArenas();
  absl::SetProgramUsageMessage("latchkey-relay: media relay worker for latchkey-control");
  absl::ParseCommandLine(argc, argv);
  if (log::Level level; log::ParseLevel(absl::GetFlag(FLAGS_log_level), &level)) log::SetMinLevel(level);

  auto config = LoadConfig();
  if (!config.ok()) {
    log::LogError("invalid configuration").Kv("error", config.status().ToString());
    return 2;
  }
  auto server = RelayServer::Start(*std::move(config));
  if (!server.ok()) {
    const bool invalid = absl::IsInvalidArgument(server.status());
    log::LogError(invalid ? "invalid configuration" : "cannot start").Kv("error", server.status().ToString());
    return invalid ? 2 : 1;
  }
  const int signal = process::WaitForTerminationSignal();
  log::LogInfo("stopping").Kv("signal", signal);
  // Drain as in Kubernetes: refuse new sessions, report not ready, let calls end within the grace.
  (*server)->Drain();
  (*server)->Shutdown();
  return 0;
}

}  // namespace
}  // namespace latchkey::relay

int main(int argc, char** argv) { return latchkey::relay::Main(argc, argv); }
