// latchkey-relay: a media relay worker. Registers with latchkey-control, serves RelayService, and
// exports Prometheus metrics.
#include <ifaddrs.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/config/flags.h"
#include "common/config/proto_file.h"
#include "common/grpc/auth.h"
#include "common/grpc/server.h"
#include "common/grpc/tls.h"
#include "common/grpc/tls_flags.h"
#include "common/log/log.h"
#include "common/metrics/metrics_server.h"
#include "common/net/ip_address.h"
#include "common/net/socket_address.h"
#include "common/process/malloc_arenas.h"
#include "common/process/mutex_mode.h"
#include "common/process/signals.h"
#include "common/time/proto_time.h"
#include "latchkey/v1/config.pb.h"
#include "media-relay/agent/advertised_address.h"
#include "media-relay/agent/control_client.h"
#include "media-relay/agent/relay_service.h"
#include "media-relay/engine/packet_engine.h"
#include "media-relay/keepalive/keepalive_sender.h"
#include "media-relay/metrics/engine_collector.h"
#include "media-relay/sessions/session_table.h"
#include "media-relay/stun/stun_message.h"
#include "media-relay/stun/stun_server.h"

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
  if (FlagGiven(FLAGS_threads) || config.threads() == 0) {
    config.set_threads(absl::GetFlag(FLAGS_threads) ? absl::GetFlag(FLAGS_threads) : std::thread::hardware_concurrency());
  }
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
  if (config.max_request_bytes() == 0) config.set_max_request_bytes(16 << 20);
  if (FlagGiven(FLAGS_health_listen)) config.set_health_listen(absl::GetFlag(FLAGS_health_listen));
  grpcutil::ApplyTlsFlags(config.mutable_tls());
  grpcutil::ApplyTlsDefaults(config.mutable_tls());
  if (absl::Status s = grpcutil::ValidateTls(config.tls()); !s.ok()) return s;
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
  if (config.keepalive_mode() == v1::KEEPALIVE_SOURCE_MODE_UNSPECIFIED) {
    config.set_keepalive_mode(v1::KEEPALIVE_SOURCE_MODE_REGISTRAR_SOURCE);
  }
  if (config.worker_id().empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    config.set_worker_id(host);
  }
  return config;
}

// Every advertised entry is parsed before any is resolved, so a bad spec fails fast (INVALID_ARGUMENT,
// exit 2) instead of after a STUN timeout. Discovery failures keep their code (UNAVAILABLE: exit 1).
// `entries` receives each spec with its bind address and start-up value, for the refresher.
absl::StatusOr<std::vector<MediaAddresses>> ResolveAddresses(const v1::RelayConfig& config,
                                                             std::vector<AdvertisedAddressRefresher::Entry>* entries) {
  if (config.media_bind_ips().empty()) return absl::InvalidArgumentError("media_bind_ips: at least one is required");
  if (!config.advertised().empty() && config.advertised_size() != config.media_bind_ips_size()) {
    return absl::InvalidArgumentError("advertised: give one address per media_bind_ips entry");
  }
  std::vector<net::IpAddress> binds;
  std::vector<AdvertisedAddressSpec> specs;
  for (int i = 0; i < config.media_bind_ips_size(); ++i) {
    auto bind = net::IpAddress::Parse(config.media_bind_ips(i));
    if (!bind.ok()) return absl::InvalidArgumentError(absl::StrCat("media_bind_ips[", i, "]: ", bind.status().message()));
    binds.push_back(*bind);
    if (config.advertised().empty()) continue;
    auto spec = AdvertisedAddressSpec::Parse(config.advertised(i));
    if (!spec.ok()) return absl::InvalidArgumentError(absl::StrCat("advertised[", i, "]: ", spec.status().message()));
    specs.push_back(*std::move(spec));
  }
  std::vector<MediaAddresses> out;
  for (size_t i = 0; i < binds.size(); ++i) {
    net::IpAddress advertised = binds[i];
    if (!specs.empty()) {
      auto resolved = Resolve(specs[i], binds[i]);
      if (!resolved.ok()) {
        return absl::Status(resolved.status().code(), absl::StrCat("advertised[", i, "] ", specs[i].ToString(), ": ",
                                                                   resolved.status().message()));
      }
      advertised = *resolved;
      entries->push_back({specs[i], binds[i], advertised});
      log::LogInfo("advertised address")
          .Kv("index", i)
          .Kv("spec", specs[i].ToString())
          .Kv("address", advertised.ToString());
    }
    out.push_back({binds[i], advertised});
  }
  return out;
}

std::vector<std::string> LocalIpv4Addresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
    std::string ip = net::IpAddress::FromV4(reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr).ToString();
    if (std::find(out.begin(), out.end(), ip) == out.end()) out.push_back(std::move(ip));
  }
  ::freeifaddrs(list);
  return out;
}

// Every address of every local interface, both families (loop protection for a wildcard bind).
std::vector<net::IpAddress> LocalIps() {
  std::vector<net::IpAddress> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      out.push_back(net::IpAddress::FromV4(reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      out.push_back(net::IpAddress::FromV6(reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr));
    }
  }
  ::freeifaddrs(list);
  return out;
}

// Opens the keepalive sockets. Without CAP_NET_RAW the worker runs on without keepalives (and
// announces no source address, so control assigns it none) rather than refusing to relay media.
std::unique_ptr<KeepaliveSender> StartKeepalives(const v1::RelayConfig& config, const net::IpAddress& first_media_ip,
                                                 prometheus::Registry& registry, KeepaliveEventSink* sink,
                                                 ControlClientOptions* announce, absl::Status* config_error) {
  if (config.keepalives_off()) {
    log::LogInfo("keepalives off");
    return nullptr;
  }
  KeepaliveSenderOptions options;
  options.mode = config.keepalive_mode();
  if (options.mode == v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET) {
    options.own_socket = {first_media_ip, 0};
    if (!config.keepalive_listen().empty()) {
      auto listen = net::SocketAddress::Parse(config.keepalive_listen());
      if (!listen.ok()) {
        *config_error = absl::InvalidArgumentError(absl::StrCat("keepalive_listen: ", listen.status().message()));
        return nullptr;
      }
      options.own_socket = *listen;
    }
    // Its address goes into Via and is what control assigns by: a wildcard would say nothing.
    if (options.own_socket.ip.IsUnspecified()) {
      *config_error = absl::InvalidArgumentError(
          "keepalive_listen: own_socket mode needs a concrete IP (the media address is a wildcard)");
      return nullptr;
    }
  }
  std::vector<std::string> sources;
  for (const std::string& ip : config.keepalive_source_ips()) {
    auto parsed = net::IpAddress::Parse(ip);
    if (!parsed.ok()) {
      *config_error = absl::InvalidArgumentError(absl::StrCat("keepalive_source_ips: ", parsed.status().message()));
      return nullptr;
    }
    sources.push_back(parsed->ToString());
  }
  std::vector<std::string> source_ips = sources.empty() ? LocalIpv4Addresses() : sources;
  for (const std::string& ip : source_ips) {
    if (auto parsed = net::IpAddress::Parse(ip); parsed.ok()) options.policy.sources.push_back(*parsed);
  }
  options.policy.allow_private = config.keepalive_allow_private();
  options.policy.allow_loopback = config.keepalive_allow_loopback();
  options.policy.max_targets = config.max_keepalive_targets();
  options.policy.min_interval = FromProto(config.min_keepalive_interval());
  auto sender = KeepaliveSender::Create(options, registry, sink);
  if (!sender.ok()) {
    log::LogWarning("keepalives disabled").Kv("error", sender.status().ToString());
    return nullptr;
  }
  announce->keepalive_mode = options.mode;
  if (options.mode == v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET) {
    announce->keepalive_source_ips = {(*sender)->own_address().ip.ToString()};
  } else {
    announce->keepalive_source_ips = source_ips;
  }
  (*sender)->Start();
  log::LogInfo("keepalives on")
      .Kv("mode", options.mode == v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET ? "own_socket" : "registrar_source")
      .Kv("own_socket", options.mode == v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET ? (*sender)->own_address().ToString() : "")
      .Kv("source_ips", absl::StrJoin(announce->keepalive_source_ips, ","));
  return *std::move(sender);
}

// Keepalive events reach the control client once it exists, like the engine's.
class KeepaliveForwarder : public KeepaliveEventSink {
 public:
  void Forward(KeepaliveEventSink* target) {
    absl::MutexLock lock(&mu_);
    target_ = target;
  }
  void OnKeepaliveEvents(std::vector<KeepaliveEventOut> events) override {
    absl::MutexLock lock(&mu_);
    if (target_) target_->OnKeepaliveEvents(std::move(events));
  }

 private:
  absl::Mutex mu_;
  KeepaliveEventSink* target_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// Engine events reach the control client once it exists (it needs the gRPC port, which needs the
// session table, which needs the engine).
class EventForwarder : public EngineEventSink {
 public:
  void Forward(EngineEventSink* target) {
    absl::MutexLock lock(&mu_);
    target_ = target;
  }
  void OnEngineEvent(EngineEvent event) override {
    absl::MutexLock lock(&mu_);
    if (target_) target_->OnEngineEvent(std::move(event));
  }

 private:
  absl::Mutex mu_;
  EngineEventSink* target_ ABSL_GUARDED_BY(mu_) = nullptr;
};

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
  std::vector<AdvertisedAddressRefresher::Entry> advertised_entries;
  auto addresses = ResolveAddresses(*config, &advertised_entries);
  auto pool = PortPool::Create(config->port_min(), config->port_max(),
                               FromProto(config->port_quarantine()));
  const bool discovery_failed = !addresses.ok() && absl::IsUnavailable(addresses.status());
  if ((!addresses.ok() && !discovery_failed) || !pool.ok()) {
    log::LogError("invalid configuration").Kv("error", (!addresses.ok() ? addresses.status() : pool.status()).ToString());
    return 2;
  }
  if (discovery_failed) {
    log::LogError("cannot discover advertised address").Kv("error", addresses.status().ToString());
    return 1;
  }
  // host: and stun: entries are re-resolved in the background; a change reaches the session table
  // (new offers and answers carry it) and control (the worker registers again) once both exist.
  absl::Mutex advertised_mu;
  std::function<void(size_t, const net::IpAddress&)> apply_advertised;  // guarded by advertised_mu
  AdvertisedAddressRefresher advertised_refresher(
      std::move(advertised_entries),
      {absl::Seconds(60),
       [&](size_t i, const net::IpAddress&, const net::IpAddress& now) {
         absl::MutexLock lock(&advertised_mu);
         if (apply_advertised) apply_advertised(i, now);
       },
       nullptr});
  advertised_refresher.Start();

  auto registry = std::make_shared<prometheus::Registry>();
  // Started once the gRPC port is known (control must be able to dial us back).
  ControlClientOptions client_options;
  client_options.control_address = config->control();
  client_options.tls = config->tls();
  client_options.worker_id = config->worker_id();
  client_options.version = LATCHKEY_VERSION;
  for (const MediaAddresses& a : *addresses) client_options.advertised_ips.push_back(a.advertised.ToString());
  std::string grpc_advertise = config->grpc_advertise();

  auto control_events = std::make_unique<EventForwarder>();
  const PacketIoMode io_mode = config->packet_io() == v1::PACKET_IO_EPOLL      ? PacketIoMode::kEpoll
                              : config->packet_io() == v1::PACKET_IO_IO_URING ? PacketIoMode::kIoUring
                                                                              : PacketIoMode::kAuto;
  PacketEngine engine(static_cast<int>(config->threads()), control_events.get(), io_mode);
  if (absl::Status s = engine.Start(); !s.ok()) {
    log::LogError("cannot start packet threads").Kv("error", s.ToString());
    return 1;
  }
  SessionTable sessions({*addresses, config->max_sessions()}, *std::move(pool), &engine);
  RelayMetrics relay_metrics(*registry);
  // Loop protection: our own media ports from the start, the peers' as control reports them.
  std::vector<RelayRanges::Range> own_ranges;
  const auto port_min = static_cast<uint16_t>(config->port_min());
  const auto port_max = static_cast<uint16_t>(config->port_max());
  for (const MediaAddresses& a : *addresses) {
    for (const net::IpAddress& ip : {a.bind, a.advertised}) own_ranges.push_back({ip, port_min, port_max, true});
    if (!a.bind.IsUnspecified()) continue;
    // Bound to all addresses: a packet from any local one (loopback included) is our own. (An
    // interface that appears later is not: bind the relay to its media addresses.)
    for (const net::IpAddress& ip : LocalIps()) own_ranges.push_back({ip, port_min, port_max, true});
  }
  engine.SetRelayRanges(std::make_shared<const RelayRanges>(own_ranges));
  client_options.port_min = config->port_min();
  client_options.port_max = config->port_max();
  client_options.on_relay_ranges = [&engine, &relay_metrics, own_ranges](const auto& relays) {
    relay_metrics.known_relays->Set(relays.size());
    std::vector<RelayRanges::Range> all = own_ranges;
    for (const v1::RelayMediaRange& relay : relays) {
      for (const std::string& text : relay.ips()) {
        auto ip = net::IpAddress::Parse(text);
        if (!ip.ok() || relay.port_min() > relay.port_max() || relay.port_max() > 65535) continue;
        all.push_back({*ip, static_cast<uint16_t>(relay.port_min()), static_cast<uint16_t>(relay.port_max())});
      }
    }
    log::LogInfo("relay media ranges").Kv("relays", relays.size()).Kv("ranges", all.size());
    engine.SetRelayRanges(std::make_shared<const RelayRanges>(std::move(all)));
  };
  auto keepalive_events = std::make_unique<KeepaliveForwarder>();
  absl::Status keepalive_config;
  std::unique_ptr<KeepaliveSender> keepalives = StartKeepalives(
      *config, addresses->front().bind, *registry, keepalive_events.get(), &client_options, &keepalive_config);
  if (!keepalive_config.ok()) {
    log::LogError("invalid configuration").Kv("error", keepalive_config.ToString());
    return 2;
  }
  grpcutil::Gate gate(*registry, config->tls().trust_domain());
  RelayServiceImpl relay_service(&sessions, &relay_metrics, &gate, keepalives.get());
  // STUN for phones: optional, so a taken port (another relay on this host) is a warning, not fatal.
  std::unique_ptr<StunServer> stun_server;
  if (config->stun_listen() != "off") {
    net::SocketAddress stun_listen{addresses->front().bind, stun::kDefaultPort};
    if (!config->stun_listen().empty()) {
      auto parsed = net::SocketAddress::Parse(config->stun_listen());
      if (!parsed.ok()) {
        log::LogError("invalid configuration").Kv("error", absl::StrCat("stun_listen: ", parsed.status().message()));
        return 2;
      }
      stun_listen = *parsed;
    }
    auto started = StunServer::Start(stun_listen, *registry);
    if (started.ok()) {
      stun_server = *std::move(started);
      log::LogInfo("STUN responder listening").Kv("address", stun_listen.ToString()).Kv("port", stun_server->port());
    } else {
      log::LogWarning("STUN responder not started").Kv("address", stun_listen.ToString()).Kv("error", started.status().ToString());
    }
  }
  auto server = grpcutil::StartServer(config->listen(), {&relay_service}, *registry,
                                      {config->tls(), static_cast<int>(config->max_request_bytes()),
                                       /*require_client_certificate=*/true});
  if (!server.ok()) {
    log::LogError("cannot start gRPC server").Kv("error", server.status().ToString());
    return 1;
  }
  auto metrics = metrics::MetricsServer::Start(config->metrics_listen(), registry, {MakeEngineCollector(&engine)});
  if (!metrics.ok()) {
    log::LogError("cannot start metrics server").Kv("error", metrics.status().ToString());
    return 1;
  }
  if (grpc_advertise.empty()) {
    auto listen = net::SocketAddress::Parse(config->listen());
    const std::string host = listen.ok() && !listen->ip.IsUnspecified() ? listen->ip.ToUriHost()
                                                                        : addresses->front().advertised.ToUriHost();
    grpc_advertise = absl::StrCat(host, ":", server->port);
  }
  client_options.grpc_address = grpc_advertise;
  ControlClient control(client_options, *registry);
  control_events->Forward(&control);
  keepalive_events->Forward(&control);
  {
    absl::MutexLock lock(&advertised_mu);
    apply_advertised = [&sessions, &control, &advertised_refresher](size_t i, const net::IpAddress& ip) {
      sessions.SetAdvertised(i, ip);
      std::vector<std::string> ips;
      for (const net::IpAddress& current : advertised_refresher.CurrentAll()) ips.push_back(current.ToString());
      control.SetAdvertisedIps(std::move(ips));
    };
  }
  control.Start(&sessions, &engine, keepalives.get());

  std::optional<grpcutil::StartedServer> health;
  if (!config->health_listen().empty()) {
    auto started = grpcutil::StartHealthServer(config->health_listen(), *registry);
    if (!started.ok()) {
      log::LogError("cannot start health server").Kv("error", started.status().ToString());
      return 1;
    }
    health = *std::move(started);
    health->SetServing(true);
  }
  server->SetServing(true);
  log::LogInfo("latchkey-relay ready")
      .Kv("worker_id", config->worker_id())
      .Kv("listen", config->listen())
      .Kv("grpc_port", server->port)
      .Kv("metrics_port", (*metrics)->port())
      .Kv("control", config->control())
      .Kv("media_ports", absl::StrCat(config->port_min(), "-", config->port_max()))
      .Kv("threads", engine.thread_count())
      .Kv("packet_io", engine.io_name());

  // Load gauges are sampled here rather than on every change: the port pool is shared state.
  std::atomic<bool> stopping{false};
  // CPU for autoscaling rules (rate() of it is cores in use); the heartbeat carries the same figure.
  prometheus::Counter& cpu_seconds = prometheus::BuildCounter()
                                         .Name("latchkey_relay_cpu_seconds_total")
                                         .Help("CPU time used by the relay process (user + system)")
                                         .Register(*registry)
                                         .Add({});
  std::thread gauges([&] {
    double cpu_reported = 0;
    while (!stopping.load()) {
      rusage usage{};
      if (::getrusage(RUSAGE_SELF, &usage) == 0) {
        const double cpu = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
                           (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
        if (cpu > cpu_reported) cpu_seconds.Increment(cpu - cpu_reported);
        cpu_reported = std::max(cpu_reported, cpu);
      }
      const v1::WorkerLoad load = sessions.Load(absl::Now());
      relay_metrics.sessions->Set(load.sessions());
      relay_metrics.sessions_max->Set(load.max_sessions());
      relay_metrics.ports_free->Set(load.free_ports());
      relay_metrics.ports_total->Set(load.total_ports());
      relay_metrics.draining->Set(sessions.draining() ? 1 : 0);
      relay_metrics.one_way_sessions->Set(static_cast<double>(sessions.CountOneWay(absl::Now(), absl::Seconds(5))));
      absl::SleepFor(absl::Milliseconds(500));
    }
  });
  const int signal = process::WaitForTerminationSignal();
  // Drain: refuse new sessions, report not-ready, let current calls finish within the grace period.
  control.DrainForShutdown();
  sessions.SetDraining(true);
  server->SetServing(false);
  if (health) health->SetServing(false);
  const absl::Duration grace = DurationOr(config->has_drain_grace(), config->drain_grace(), absl::Seconds(30));
  log::LogInfo("draining").Kv("signal", signal).Kv("sessions", sessions.size()).Kv("grace_s", absl::ToInt64Seconds(grace));
  const absl::Time deadline = absl::Now() + grace;
  while (sessions.size() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(200));
  relay_metrics.closed_worker_drain->Increment(static_cast<double>(sessions.size()));
  control_events->Forward(nullptr);
  keepalive_events->Forward(nullptr);
  {
    absl::MutexLock lock(&advertised_mu);
    apply_advertised = nullptr;
  }
  if (keepalives) keepalives->Stop();
  control.Stop();
  stopping = true;
  gauges.join();
  server->server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  if (health) health->server->Shutdown(absl::ToChronoTime(absl::Now()));
  advertised_refresher.Stop();
  engine.Stop();
  log::LogInfo("latchkey-relay stopped").Kv("sessions_left", sessions.size());
  return 0;
}

}  // namespace
}  // namespace latchkey::relay

int main(int argc, char** argv) { return latchkey::relay::Main(argc, argv); }
