#include "media-relay/metrics/relay_metrics.h"

namespace latchkey::relay {

RelayMetrics::RelayMetrics(prometheus::Registry& registry) {
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({});
  };
  auto counter = [&](const char* name, const char* help) {
    return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
  };
  sessions = gauge("latchkey_relay_sessions", "Sessions this worker relays");
  sessions_max = gauge("latchkey_relay_sessions_max", "Sessions this worker accepts at most");
  ports_free = gauge("latchkey_relay_ports_free", "Media ports free for new sessions (quarantined ports excluded)");
  ports_total = gauge("latchkey_relay_ports_max", "Media ports in the configured range");
  draining = gauge("latchkey_relay_draining", "1 while the worker drains and takes no new sessions");
  known_relays = gauge("latchkey_relay_known_relays",
                       "Relay workers (this one included) whose media ports this one refuses to latch onto unsignalled");
  sessions_created = counter("latchkey_relay_sessions_created_total", "Sessions created on this worker");
  auto& closed = prometheus::BuildCounter()
                     .Name("latchkey_relay_sessions_closed_total")
                     .Help("Sessions closed on this worker, by the reason control gave")
                     .Register(registry);
  closed_released_ = &closed.Add({{"reason", "released"}});
  closed_expired_ = &closed.Add({{"reason", "expired"}});
  closed_media_timeout_ = &closed.Add({{"reason", "media_timeout"}});
  closed_final_timeout_ = &closed.Add({{"reason", "final_timeout"}});
  closed_worker_drain = &closed.Add({{"reason", "worker_drain"}});
  closed_other_ = &closed.Add({{"reason", "other"}});
  one_way_sessions = gauge("latchkey_relay_one_way_sessions",
                           "Answered sessions with media in one direction only (after a few seconds)");
  create_failures = counter("latchkey_relay_session_create_failures_total",
                            "CreateRelaySession calls refused (full, draining, no port, bad request)");
}

prometheus::Counter* RelayMetrics::ClosedCounter(v1::SessionEventType reason) {
  switch (reason) {
    case v1::SESSION_EVENT_TYPE_RELEASED: return closed_released_;
    case v1::SESSION_EVENT_TYPE_EXPIRED: return closed_expired_;
    case v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT: return closed_media_timeout_;
    case v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT: return closed_final_timeout_;
    default: return closed_other_;
  }
}

}  // namespace latchkey::relay
