#include "media-relay/relay_server.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/grpc/tls.h"
#include "common/log/log.h"
#include "common/net/ip_address.h"
#include "common/net/socket_address.h"
#include "common/status_macros.h"
#include "common/time/proto_time.h"
#include "media-relay/metrics/engine_collector.h"
#include "media-relay/ports/port_pool.h"
#include "media-relay/stun/stun_message.h"
#include "prometheus/counter.h"

namespace latchkey::relay {
namespace {

constexpr absl::Duration kDefaultDrainGrace = absl::Seconds(30);
constexpr absl::Duration kAdvertisedRefreshInterval = absl::Seconds(60);
constexpr absl::Duration kSampleInterval = absl::Milliseconds(500);

// Every advertised entry is parsed before any is resolved, so a bad spec fails fast (INVALID_ARGUMENT)
// instead of after a STUN timeout. Discovery failures keep their code (UNAVAILABLE). `entries`
// receives each spec with its bind address and start-up value, for the refresher.
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
        return absl::Status(resolved.status().code(),
                            absl::StrCat("cannot discover advertised address: advertised[", i, "] ", specs[i].ToString(),
                                         ": ", resolved.status().message()));
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

// Every address of every local interface, both families when `ipv6` (loop protection for a
// wildcard bind), else IPv4 only (registrar-source keepalive addresses).
std::vector<net::IpAddress> LocalIps(bool ipv6) {
  std::vector<net::IpAddress> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    net::IpAddress ip;
    if (i->ifa_addr->sa_family == AF_INET) {
      ip = net::IpAddress::FromV4(reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr);
    } else if (ipv6 && i->ifa_addr->sa_family == AF_INET6) {
      ip = net::IpAddress::FromV6(reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr);
    } else {
      continue;
    }
    if (std::find(out.begin(), out.end(), ip) == out.end()) out.push_back(ip);
  }
  ::freeifaddrs(list);
  return out;
}

struct Keepalives {
  std::unique_ptr<KeepaliveSender> sender;  // null: off, or no CAP_NET_RAW
  v1::KeepaliveSourceMode mode = v1::KEEPALIVE_SOURCE_MODE_UNSPECIFIED;
  std::vector<std::string> source_ips;  // what control is told
};

// Opens the keepalive sockets. Without CAP_NET_RAW the worker runs on without keepalives (and
// announces no source address, so control assigns it none) rather than refusing to relay media.
absl::StatusOr<Keepalives> StartKeepalives(const v1::RelayConfig& config, const net::IpAddress& first_media_ip,
                                           prometheus::Registry& registry, KeepaliveEventSink* sink) {
  Keepalives out;
  if (config.keepalives_off()) {
    log::LogInfo("keepalives off");
    return out;
  }
  KeepaliveSenderOptions options;
  options.mode = config.keepalive_mode();
  if (options.mode == v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET) {
    options.own_socket = {first_media_ip, 0};
    if (!config.keepalive_listen().empty()) {
      auto listen = net::SocketAddress::Parse(config.keepalive_listen());
      if (!listen.ok()) return absl::InvalidArgumentError(absl::StrCat("keepalive_listen: ", listen.status().message()));
      options.own_socket = *listen;
    }
    // Its address goes into Via and is what control assigns by: a wildcard would say nothing.
    if (options.own_socket.ip.IsUnspecified()) {
      return absl::InvalidArgumentError(
          "keepalive_listen: own_socket mode needs a concrete IP (the media address is a wildcard)");
    }
  }
  std::vector<net::IpAddress> sources;
  for (const std::string& ip : config.keepalive_source_ips()) {
    auto parsed = net::IpAddress::Parse(ip);
    if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat("keepalive_source_ips: ", parsed.status().message()));
    sources.push_back(*parsed);
  }
  options.policy.sources = sources.empty() ? LocalIps(/*ipv6=*/false) : sources;
  options.policy.allow_private = config.keepalive_allow_private();
  options.policy.allow_loopback = config.keepalive_allow_loopback();
  options.policy.max_targets = config.max_keepalive_targets();
  options.policy.min_interval = FromProto(config.min_keepalive_interval());
  std::vector<std::string> source_ips;
  for (const net::IpAddress& ip : options.policy.sources) source_ips.push_back(ip.ToString());
  auto sender = KeepaliveSender::Create(options, registry, sink);
  if (!sender.ok()) {
    log::LogWarning("keepalives disabled").Kv("error", sender.status().ToString());
    return out;
  }
  out.mode = options.mode;
  const bool own_socket = options.mode == v1::KEEPALIVE_SOURCE_MODE_OWN_SOCKET;
  out.source_ips = own_socket ? std::vector<std::string>{(*sender)->own_address().ip.ToString()} : source_ips;
  (*sender)->Start();
  log::LogInfo("keepalives on")
      .Kv("mode", own_socket ? "own_socket" : "registrar_source")
      .Kv("own_socket", own_socket ? (*sender)->own_address().ToString() : "")
      .Kv("source_ips", absl::StrJoin(out.source_ips, ","));
  out.sender = *std::move(sender);
  return out;
}

PacketIoMode IoMode(v1::PacketIo io) {
  switch (io) {
    case v1::PACKET_IO_EPOLL:
      return PacketIoMode::kEpoll;
    case v1::PACKET_IO_IO_URING:
      return PacketIoMode::kIoUring;
    default:
      return PacketIoMode::kAuto;
  }
}

}  // namespace

void ApplyDefaults(v1::RelayConfig* config) {
  if (config->threads() == 0) config->set_threads(std::max(1u, std::thread::hardware_concurrency()));
  if (config->max_request_bytes() == 0) config->set_max_request_bytes(16 << 20);
  if (config->keepalive_mode() == v1::KEEPALIVE_SOURCE_MODE_UNSPECIFIED) {
    config->set_keepalive_mode(v1::KEEPALIVE_SOURCE_MODE_REGISTRAR_SOURCE);
  }
  if (config->packet_io() == v1::PACKET_IO_UNSPECIFIED) config->set_packet_io(v1::PACKET_IO_AUTO);
  if (config->worker_id().empty()) {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    config->set_worker_id(host);
  }
  grpcutil::ApplyTlsDefaults(config->mutable_tls());
}

absl::StatusOr<std::unique_ptr<RelayServer>> RelayServer::Start(v1::RelayConfig config) {
  ApplyDefaults(&config);
  std::unique_ptr<RelayServer> server(new RelayServer());
  server->config_ = std::move(config);
  if (absl::Status s = server->Assemble(); !s.ok()) {
    server->Shutdown();
    return s;
  }
  return server;
}

absl::Status RelayServer::Assemble() {
  if (absl::Status s = grpcutil::ValidateTls(config_.tls()); !s.ok()) return s;
  std::vector<AdvertisedAddressRefresher::Entry> advertised_entries;
  ASSIGN_OR_RETURN(std::vector<MediaAddresses> addresses, ResolveAddresses(config_, &advertised_entries));
  ASSIGN_OR_RETURN(PortPool pool, PortPool::Create(config_.port_min(), config_.port_max(),
                                                  FromProto(config_.port_quarantine())));
  registry_ = std::make_shared<prometheus::Registry>();
  relay_metrics_ = std::make_unique<RelayMetrics>(*registry_);

  // Loop protection: our own media ports from the start, the peers' as control reports them.
  std::vector<RelayRanges::Range> own_ranges;
  const auto port_min = static_cast<uint16_t>(config_.port_min());
  const auto port_max = static_cast<uint16_t>(config_.port_max());
  for (const MediaAddresses& a : addresses) {
    for (const net::IpAddress& ip : {a.bind, a.advertised}) own_ranges.push_back({ip, port_min, port_max, true});
    if (!a.bind.IsUnspecified()) continue;
    // Bound to all addresses: a packet from any local one (loopback included) is our own. (An
    // interface that appears later is not: bind the relay to its media addresses.)
    for (const net::IpAddress& ip : LocalIps(/*ipv6=*/true)) own_ranges.push_back({ip, port_min, port_max, true});
  }

  ControlClientOptions client_options;
  client_options.control_address = config_.control();
  client_options.tls = config_.tls();
  client_options.worker_id = config_.worker_id();
  client_options.version = LATCHKEY_VERSION;
  for (const MediaAddresses& a : addresses) client_options.advertised_ips.push_back(a.advertised.ToString());
  client_options.port_min = config_.port_min();
  client_options.port_max = config_.port_max();
  client_options.on_relay_ranges = [this, own_ranges](const auto& relays) {
    relay_metrics_->known_relays->Set(relays.size());
    std::vector<RelayRanges::Range> all = own_ranges;
    for (const v1::RelayMediaRange& relay : relays) {
      for (const std::string& text : relay.ips()) {
        auto ip = net::IpAddress::Parse(text);
        if (!ip.ok() || relay.port_min() > relay.port_max() || relay.port_max() > 65535) continue;
        all.push_back({*ip, static_cast<uint16_t>(relay.port_min()), static_cast<uint16_t>(relay.port_max())});
      }
    }
    log::LogInfo("relay media ranges").Kv("relays", relays.size()).Kv("ranges", all.size());
    engine_->SetRelayRanges(std::make_shared<const RelayRanges>(std::move(all)));
  };
  control_ = std::make_unique<ControlClient>(std::move(client_options), *registry_);

  FastPathOptions fast_path_options;
  fast_path_options.requested = config_.fast_path();
  for (const MediaAddresses& a : addresses) fast_path_options.media_ips.push_back(a.bind);
  fast_path_options.tc_priority = port_min;
  ASSIGN_OR_RETURN(fast_path_, FastPath::Start(fast_path_options));
  engine_ = std::make_unique<PacketEngine>(static_cast<int>(config_.threads()), control_.get(), IoMode(config_.packet_io()),
                                           fast_path_.get());
  if (absl::Status s = engine_->Start(); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("cannot start packet threads: ", s.message()));
  }
  engine_->SetRelayRanges(std::make_shared<const RelayRanges>(own_ranges));
  sessions_ = std::make_unique<SessionTable>(SessionTableOptions{addresses, config_.max_sessions()}, std::move(pool),
                                             engine_.get());

  ASSIGN_OR_RETURN(Keepalives keepalives, StartKeepalives(config_, addresses.front().bind, *registry_, control_.get()));
  keepalives_ = std::move(keepalives.sender);
  gate_ = std::make_unique<grpcutil::Gate>(*registry_, config_.tls().trust_domain());
  relay_service_ = std::make_unique<RelayServiceImpl>(sessions_.get(), relay_metrics_.get(), gate_.get(), keepalives_.get());

  // STUN for phones: optional, so a taken port (another relay on this host) is a warning, not fatal.
  if (config_.stun_listen() != "off") {
    net::SocketAddress stun_listen{addresses.front().bind, stun::kDefaultPort};
    if (!config_.stun_listen().empty()) {
      auto parsed = net::SocketAddress::Parse(config_.stun_listen());
      if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat("stun_listen: ", parsed.status().message()));
      stun_listen = *parsed;
    }
    auto started = StunServer::Start(stun_listen, *registry_);
    if (started.ok()) {
      stun_server_ = *std::move(started);
      log::LogInfo("STUN responder listening").Kv("address", stun_listen.ToString()).Kv("port", stun_server_->port());
    } else {
      log::LogWarning("STUN responder not started").Kv("address", stun_listen.ToString()).Kv("error", started.status().ToString());
    }
  }

  ASSIGN_OR_RETURN(grpc_, grpcutil::StartServer(config_.listen(), {relay_service_.get()}, *registry_,
                                                {config_.tls(), static_cast<int>(config_.max_request_bytes()),
                                                 /*require_client_certificate=*/true}));
  ASSIGN_OR_RETURN(metrics_server_,
                   metrics::MetricsServer::Start(config_.metrics_listen(), registry_, {MakeEngineCollector(engine_.get())}));
  if (!config_.health_listen().empty()) {
    ASSIGN_OR_RETURN(health_, grpcutil::StartHealthServer(config_.health_listen(), *registry_));
  }

  std::string grpc_advertise = config_.grpc_advertise();
  if (grpc_advertise.empty()) {
    auto listen = net::SocketAddress::Parse(config_.listen());
    const std::string host = listen.ok() && !listen->ip.IsUnspecified() ? listen->ip.ToUriHost()
                                                                        : addresses.front().advertised.ToUriHost();
    grpc_advertise = absl::StrCat(host, ":", grpc_.port);
  }
  control_->Start({sessions_.get(), engine_.get(), keepalives_.get(), grpc_advertise, keepalives.mode,
                   std::move(keepalives.source_ips)});

  // host: and stun: entries are re-resolved in the background; a change reaches new offers and
  // answers (the session table) and control (the worker registers again).
  advertised_ = std::make_unique<AdvertisedAddressRefresher>(
      std::move(advertised_entries),
      AdvertisedAddressRefresher::Options{
          kAdvertisedRefreshInterval,
          [this](size_t i, const net::IpAddress&, const net::IpAddress& now) { OnAdvertisedChange(i, now); }, nullptr});
  advertised_->Start();

  // CPU for autoscaling rules (rate() of it is cores in use); the heartbeat carries the same figure.
  cpu_seconds_ = &prometheus::BuildCounter()
                      .Name("latchkey_relay_cpu_seconds_total")
                      .Help("CPU time used by the relay process (user + system)")
                      .Register(*registry_)
                      .Add({});
  sampler_ = std::thread([this] { SampleLoop(); });

  if (health_) health_->SetServing(true);
  grpc_.SetServing(true);
  log::LogInfo("latchkey-relay ready")
      .Kv("worker_id", config_.worker_id())
      .Kv("listen", config_.listen())
      .Kv("grpc_port", grpc_.port)
      .Kv("metrics_port", metrics_server_->port())
      .Kv("control", config_.control())
      .Kv("media_ports", absl::StrCat(config_.port_min(), "-", config_.port_max()))
      .Kv("threads", engine_->thread_count())
      .Kv("packet_io", engine_->io_name())
      .Kv("fast_path", engine_->fast_path_mode());
  return absl::OkStatus();
}

int RelayServer::stun_port() const { return stun_server_ ? stun_server_->port() : 0; }

void RelayServer::OnAdvertisedChange(size_t index, const net::IpAddress& now) {
  sessions_->SetAdvertised(index, now);
  std::vector<std::string> ips;
  for (const net::IpAddress& current : advertised_->CurrentAll()) ips.push_back(current.ToString());
  control_->SetAdvertisedIps(std::move(ips));
}

void RelayServer::SampleLoop() {
  double cpu_reported = 0;
  do {
    fast_path_->KeepAlive();  // entries go inert a few seconds after the last of these
    rusage usage{};
    if (::getrusage(RUSAGE_SELF, &usage) == 0) {
      const double cpu = usage.ru_utime.tv_sec + usage.ru_stime.tv_sec +
                         (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
      if (cpu > cpu_reported) cpu_seconds_->Increment(cpu - cpu_reported);
      cpu_reported = std::max(cpu_reported, cpu);
    }
    const absl::Time now = absl::Now();
    const v1::WorkerLoad load = sessions_->Load(now);
    relay_metrics_->sessions->Set(load.sessions());
    relay_metrics_->sessions_max->Set(load.max_sessions());
    relay_metrics_->ports_free->Set(load.free_ports());
    relay_metrics_->ports_total->Set(load.total_ports());
    relay_metrics_->draining->Set(sessions_->draining() ? 1 : 0);
    relay_metrics_->one_way_sessions->Set(static_cast<double>(sessions_->CountOneWay(now, absl::Seconds(5))));
  } while (!stop_sampling_.WaitForNotificationWithTimeout(kSampleInterval));
}

void RelayServer::Drain() {
  control_->DrainForShutdown();
  sessions_->SetDraining(true);
  grpc_.SetServing(false);
  if (health_) health_->SetServing(false);
  const absl::Duration grace = DurationOr(config_.has_drain_grace(), config_.drain_grace(), kDefaultDrainGrace);
  log::LogInfo("draining").Kv("sessions", sessions_->size()).Kv("grace_s", absl::ToInt64Seconds(grace));
  const absl::Time deadline = absl::Now() + grace;
  while (sessions_->size() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(200));
}

void RelayServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (advertised_) advertised_->Stop();
  if (sessions_) relay_metrics_->closed_worker_drain->Increment(static_cast<double>(sessions_->size()));
  if (keepalives_) keepalives_->Stop();
  if (control_) control_->Stop();
  if (sampler_.joinable()) {
    stop_sampling_.Notify();
    sampler_.join();
  }
  if (grpc_.server) grpc_.server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
  if (health_) health_->server->Shutdown(absl::ToChronoTime(absl::Now()));
  if (engine_) engine_->Stop();
  // The packet threads no longer keep the kernel's entries in step: nothing may forward now.
  if (fast_path_) fast_path_->Shutdown();
  log::LogInfo("latchkey-relay stopped").Kv("sessions_left", sessions_ ? sessions_->size() : 0);
}

RelayServer::~RelayServer() { Shutdown(); }

}  // namespace latchkey::relay
