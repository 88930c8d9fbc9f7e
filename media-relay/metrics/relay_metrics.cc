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
  ports_total = gauge("latchkey_relay_ports_total", "Media ports in the configured range");
  draining = gauge("latchkey_relay_draining", "1 while the worker drains and takes no new sessions");
  sessions_created = counter("latchkey_relay_sessions_created_total", "Sessions created on this worker");
  sessions_deleted = counter("latchkey_relay_sessions_deleted_total", "Sessions deleted on this worker");
  create_failures = counter("latchkey_relay_session_create_failures_total",
                            "CreateRelaySession calls refused (full, draining, no port, bad request)");
}

}  // namespace latchkey::relay
