#include "services/control/control_server.h"

#include "absl/time/clock.h"
#include "common/grpc/tls.h"
#include "common/log/log.h"
#include "common/net/cidr.h"
#include "common/time/proto_time.h"
#include "common/validation.h"

namespace latchkey::control {
namespace {

constexpr absl::Duration kSweepInterval = absl::Milliseconds(250);
// The leader lease outlives a few missed renewals (one per sweep) but not a dead leader for long:
// keepalive changes wait at most this long for a new leader.
constexpr absl::Duration kLeaseTtl = absl::Seconds(2);

void DefaultDuration(google::protobuf::Duration* field, bool has, absl::Duration value) {
  if (!has || FromProto(*field) <= absl::ZeroDuration()) *field = ToProto(value);
}

absl::Status Validate(const v1::ControlConfig& config) {
  if (config.worker_lost_after_missed() < 1 || config.worker_lost_after_missed() > 100) {
    return absl::InvalidArgumentError("worker_lost_after_missed: must be 1-100");
  }
  if (FromProto(config.worker_heartbeat_interval()) < absl::Milliseconds(50)) {
    return absl::InvalidArgumentError("worker_heartbeat_interval: must be at least 50ms");
  }
  if (config.max_request_bytes() < 64 * 1024) {
    return absl::InvalidArgumentError("max_request_bytes: must be at least 65536 (an SDP with every line)");
  }
  if (config.max_worker_request_bytes() < config.max_request_bytes()) {
    return absl::InvalidArgumentError("max_worker_request_bytes: must be at least max_request_bytes");
  }
  if (config.worker_listen() == config.listen()) {
    return absl::InvalidArgumentError("worker_listen: must differ from listen (the worker API has its own port)");
  }
  if (config.ng().threads() > 64) return absl::InvalidArgumentError("ng.threads: must be 1-64");
  if (absl::Status s = CheckToken("ng.identity", config.ng().identity(), 64); !s.ok()) return s;
  if (FromProto(config.ng().delete_delay()) < absl::ZeroDuration() ||
      FromProto(config.ng().delete_delay()) > absl::Hours(1)) {
    return absl::InvalidArgumentError("ng.delete_delay: must be 0-1h");
  }
  return grpcutil::ValidateTls(config.tls());
}

}  // namespace

void ApplyDefaults(v1::ControlConfig* c) {
  if (c->listen().empty()) c->set_listen("127.0.0.1:7400");
  if (c->metrics_listen().empty()) c->set_metrics_listen("127.0.0.1:9400");
  DefaultDuration(c->mutable_binding_grace(), c->has_binding_grace(), absl::Seconds(30));
  DefaultDuration(c->mutable_session_offer_timeout(), c->has_session_offer_timeout(), absl::Minutes(10));
  DefaultDuration(c->mutable_session_idle_timeout(), c->has_session_idle_timeout(), absl::Hours(1));
  DefaultDuration(c->mutable_session_final_timeout(), c->has_session_final_timeout(), absl::Hours(12));
  DefaultDuration(c->mutable_media_timeout(), c->has_media_timeout(), absl::Seconds(60));
  DefaultDuration(c->mutable_worker_heartbeat_interval(), c->has_worker_heartbeat_interval(), absl::Seconds(1));
  DefaultDuration(c->mutable_worker_call_timeout(), c->has_worker_call_timeout(), absl::Seconds(2));
  DefaultDuration(c->mutable_ended_session_retention(), c->has_ended_session_retention(), absl::Seconds(30));
  if (c->worker_lost_after_missed() == 0) c->set_worker_lost_after_missed(3);
  if (c->max_bindings() == 0) c->set_max_bindings(5'000'000);
  if (c->worker_listen().empty()) c->set_worker_listen("127.0.0.1:7401");
  if (c->max_request_bytes() == 0) c->set_max_request_bytes(1 << 20);
  if (c->max_worker_request_bytes() == 0) c->set_max_worker_request_bytes(64 << 20);
  if (c->max_bindings_per_pbx() == 0) c->set_max_bindings_per_pbx(1'000'000);
  if (c->max_sessions_per_pbx() == 0) c->set_max_sessions_per_pbx(100'000);
  if (c->max_watches_per_identity() == 0) c->set_max_watches_per_identity(8);
  if (c->max_watches() == 0) c->set_max_watches(64);
  if (c->watch_queue_limit() == 0) c->set_watch_queue_limit(10'000);
  if (c->event_log_length() == 0) c->set_event_log_length(kDefaultLogLength);
  if (c->store().empty()) c->set_store("memory");
  if (c->store_key_prefix().empty()) c->set_store_key_prefix("lk:");
  DefaultDuration(c->mutable_store_timeout(), c->has_store_timeout(), absl::Milliseconds(500));
  DefaultDuration(c->mutable_forget_lost_workers_after(), c->has_forget_lost_workers_after(), absl::Hours(1));
  grpcutil::ApplyTlsDefaults(c->mutable_tls());
  v1::NgConfig* ng = c->mutable_ng();
  if (ng->identity().empty()) ng->set_identity("ng");
  // 0 s is a setting here (release at once), not "unset".
  if (!ng->has_delete_delay()) *ng->mutable_delete_delay() = ToProto(absl::Seconds(30));
  if (ng->threads() == 0) ng->set_threads(4);
  if (ng->max_sessions_per_call() == 0) ng->set_max_sessions_per_call(32);
}

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(v1::ControlConfig config) {
  ApplyDefaults(&config);
  if (absl::Status s = Validate(config); !s.ok()) return s;
  auto detector = NatDetector::Create(config.nat_policies());
  if (!detector.ok()) return detector.status();

  std::unique_ptr<ControlServer> server(new ControlServer());
  ControlServer& s = *server;
  s.config_ = config;
  s.registry_ = std::make_shared<prometheus::Registry>();
  s.metrics_ = std::make_unique<ControlMetrics>(*s.registry_);
  ControlMetrics* counted = s.metrics_.get();
  auto stores = OpenStores(config, [counted](redis::RedisConnectionEvent event) {
    counted->redis_events[static_cast<size_t>(event)]->Increment();
  });
  if (!stores.ok()) return stores.status();
  s.stores_ = *std::move(stores);
  s.detector_ = std::make_unique<NatDetector>(*std::move(detector));
  s.workers_ = std::make_unique<WorkerRegistry>(
      WorkerRegistryOptions{FromProto(config.worker_heartbeat_interval()), config.worker_lost_after_missed(),
                            FromProto(config.forget_lost_workers_after()), config.tls()},
      s.metrics_.get(), s.stores_.workers.get());
  ControlMetrics* metrics = s.metrics_.get();
  s.leadership_ = std::make_unique<Leadership>(s.stores_.keepalive_lease.get(), NewHolderName(), kLeaseTtl, metrics);
  BindingStore* binding_store = s.stores_.bindings.get();
  SessionStore* session_store = s.stores_.sessions.get();
  EventFeedOptions feed_options;
  feed_options.capacity = config.watch_queue_limit();
  feed_options.name = "bindings";
  s.binding_events_ = std::make_unique<EventFeed<BindingLogEntry>>(
      feed_options,
      [binding_store](const std::string& after, size_t limit) { return binding_store->ReadLog(after, limit); },
      [binding_store] { return binding_store->LogTail(); });
  feed_options.name = "sessions";
  s.session_events_ = std::make_unique<EventFeed<SessionEvent>>(
      feed_options,
      [session_store](const std::string& after, size_t limit) { return session_store->ReadLog(after, limit); },
      [session_store] { return session_store->LogTail(); });
  EventFeed<BindingLogEntry>* binding_feed = s.binding_events_.get();
  EventFeed<SessionEvent>* session_feed = s.session_events_.get();
  s.watch_limits_ = std::make_unique<WatchLimits>(config.max_watches_per_identity(), config.max_watches());
  s.gate_ = std::make_unique<grpcutil::Gate>(*s.registry_, config.tls().trust_domain());
  auto clock = [] { return absl::Now(); };
  s.bindings_ = std::make_unique<BindingManager>(
      BindingManagerOptions{FromProto(config.binding_grace()), config.max_bindings(), config.max_bindings_per_pbx()}, s.stores_.bindings.get(),
      s.detector_.get(), s.workers_.get(), metrics, [binding_feed] { binding_feed->Poke(); }, clock);
  s.relay_sessions_ = std::make_unique<WorkerRelaySessions>(s.workers_.get(), metrics,
                                                            FromProto(config.worker_call_timeout()), clock);
  SessionTimeouts timeouts;
  timeouts.offer = FromProto(config.session_offer_timeout());
  timeouts.idle = FromProto(config.session_idle_timeout());
  timeouts.final = FromProto(config.session_final_timeout());
  timeouts.ended_retention = FromProto(config.ended_session_retention());
  s.session_writer_ = std::make_unique<SessionWriter>(s.stores_.sessions.get(), s.relay_sessions_.get(), metrics,
                                                      timeouts, clock, [session_feed] { session_feed->Poke(); });
  WorkerRegistry* workers = s.workers_.get();
  s.sessions_ = std::make_unique<SessionManager>(
      SessionManagerOptions{FromProto(config.media_timeout()), FromProto(config.session_final_timeout()),
                            config.max_sessions_per_pbx()},
      s.stores_.sessions.get(), s.session_writer_.get(), s.relay_sessions_.get(), metrics, s.detector_.get(),
      [workers](const std::string& ip, uint32_t port) { return workers->IsRelayMediaAddress(ip, port); });
  s.worker_sessions_ = std::make_unique<WorkerSessions>(s.stores_.sessions.get(), s.session_writer_.get(),
                                                        s.relay_sessions_.get(), workers, metrics,
                                                        config.max_sessions_per_pbx(), s.stores_.durable);
  s.session_sweeper_ = std::make_unique<SessionSweeper>(s.stores_.sessions.get(), s.session_writer_.get());
  s.nat_service_ = std::make_unique<NatControlServiceImpl>(s.bindings_.get(), s.sessions_.get(), s.workers_.get(),
                                                           s.binding_events_.get(), s.session_events_.get(),
                                                           s.watch_limits_.get(), metrics, s.gate_.get());
  s.worker_service_ = std::make_unique<WorkerRegistryServiceImpl>(s.workers_.get(), s.worker_sessions_.get(),
                                                                  s.bindings_.get(), clock, s.gate_.get());
  s.keepalives_ = std::make_unique<KeepaliveAssigner>(KeepaliveAssignerOptions{}, s.stores_.bindings.get(),
                                                      s.workers_.get(), binding_feed, s.leadership_.get(), metrics);

  auto metrics_server = metrics::MetricsServer::Start(config.metrics_listen(), s.registry_);
  if (!metrics_server.ok()) return metrics_server.status();
  s.metrics_server_ = *std::move(metrics_server);
  // Two ports, so that network policy can keep PBXs off the worker API and relays off the PBX API,
  // and each has a receive limit fitting its largest legitimate request.
  grpcutil::ServerOptions api_options{config.tls(), static_cast<int>(config.max_request_bytes())};
  auto grpc = grpcutil::StartServer(config.listen(), {s.nat_service_.get()}, *s.registry_, api_options);
  if (!grpc.ok()) return grpc.status();
  s.grpc_ = *std::move(grpc);
  grpcutil::ServerOptions worker_options{config.tls(), static_cast<int>(config.max_worker_request_bytes()),
                                         /*require_client_certificate=*/true};
  auto worker_grpc = grpcutil::StartServer(config.worker_listen(), {s.worker_service_.get()}, *s.registry_, worker_options);
  if (!worker_grpc.ok()) return worker_grpc.status();
  s.worker_grpc_ = *std::move(worker_grpc);
  if (!config.health_listen().empty()) {
    auto health = grpcutil::StartHealthServer(config.health_listen(), *s.registry_);
    if (!health.ok()) return health.status();
    s.health_grpc_ = *std::move(health);
  }
  if (!config.ng().listen().empty()) {
    auto allow = net::CidrSet::Parse(config.ng().allow(), "ng.allow");
    if (!allow.ok()) return allow.status();
    s.ng_metrics_ = std::make_unique<ng::NgMetrics>(*s.registry_);
    ng::CommandOptions ng_options;
    ng_options.caller = grpcutil::Caller::Of(auth::Role::kPbx, config.ng().identity());
    ng_options.delete_delay = FromProto(config.ng().delete_delay());
    ng_options.max_sessions_per_call = config.ng().max_sessions_per_call();
    s.ng_handler_ = std::make_unique<ng::CommandHandler>(ng_options, s.sessions_.get(), session_store, clock);
    auto ng_server = ng::NgServer::Start({config.ng().listen(), *std::move(allow), static_cast<int>(config.ng().threads())},
                                         s.ng_handler_.get(), s.ng_metrics_.get());
    if (!ng_server.ok()) return ng_server.status();
    s.ng_server_ = *std::move(ng_server);
  }
  s.binding_events_->Start();
  s.session_events_->Start();
  // Leading (or not) is settled before the first request, so a single replica pushes at once.
  s.leadership_->Renew(absl::Now());
  s.sweeper_ = std::thread([&s] { s.SweepLoop(); });
  s.keepalives_->Start();
  s.grpc_.SetServing(true);
  s.worker_grpc_.SetServing(true);
  s.health_grpc_.SetServing(true);
  return server;
}

void ControlServer::SweepLoop() {
  while (!stop_.WaitForNotificationWithTimeout(kSweepInterval)) {
    const bool leading = leadership_->Renew(absl::Now()) != 0;
    // Lost workers first: ending their sessions needs no worker call, and later sweeps skip them.
    // Every replica sweeps workers (it also refreshes its view of them); one acts on each loss.
    for (const std::string& worker_id : workers_->SweepLost(absl::Now())) worker_sessions_->WorkerLost(worker_id);
    if (!leading) continue;
    const size_t bindings = bindings_->SweepExpired();
    const size_t sessions = session_sweeper_->SweepExpired();
    if (bindings || sessions) log::LogDebug("sweep").Kv("bindings_expired", bindings).Kv("sessions_expired", sessions);
  }
}

void ControlServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // Also reached from a Start that failed half way: only stop what was started.
  grpc_.SetServing(false);
  worker_grpc_.SetServing(false);
  health_grpc_.SetServing(false);
  // No new ng requests; those running finish first.
  if (ng_server_) ng_server_->Shutdown();
  // Watch streams end first so Shutdown does not wait for them.
  if (binding_events_) binding_events_->Shutdown();
  if (session_events_) session_events_->Shutdown();
  if (grpc_.server) grpc_.server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  if (worker_grpc_.server) worker_grpc_.server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
  if (health_grpc_.server) health_grpc_.server->Shutdown(absl::ToChronoTime(absl::Now()));
  stop_.Notify();
  if (sweeper_.joinable()) sweeper_.join();
  if (keepalives_) keepalives_->Stop();
  // Another replica takes over at once rather than after the lease's time to live.
  if (leadership_) leadership_->Release();
  if (binding_events_) binding_events_->Stop();
  if (session_events_) session_events_->Stop();
}

ControlServer::~ControlServer() { Shutdown(); }

}  // namespace latchkey::control
