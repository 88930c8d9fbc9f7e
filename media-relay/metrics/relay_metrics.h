#pragma once
// What latchkey-relay exports besides RPC metrics (common/grpc) and registration counters (agent).
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "latchkey/v1/nat_control.pb.h"
#include "prometheus/registry.h"

namespace latchkey::relay {

struct RelayMetrics {
  explicit RelayMetrics(prometheus::Registry& registry);

  prometheus::Gauge* sessions;           // latchkey_relay_sessions
  prometheus::Gauge* sessions_max;       // latchkey_relay_sessions_max
  prometheus::Gauge* ports_free;         // latchkey_relay_ports_free
  prometheus::Gauge* ports_total;        // latchkey_relay_ports_max
  prometheus::Gauge* draining;           // latchkey_relay_draining (0/1)
  prometheus::Gauge* known_relays;       // latchkey_relay_known_relays (loop protection)
  prometheus::Counter* sessions_created;  // latchkey_relay_sessions_created_total
  // latchkey_relay_sessions_closed_total{reason}: released, expired, media_timeout, final_timeout,
  // worker_drain (still open when the drain grace ran out), other
  prometheus::Counter* ClosedCounter(v1::SessionEventType reason);
  prometheus::Counter* closed_worker_drain;
  prometheus::Gauge* one_way_sessions;   // latchkey_relay_one_way_sessions
  prometheus::Counter* create_failures;   // latchkey_relay_session_create_failures_total

 private:
  prometheus::Counter* closed_released_;
  prometheus::Counter* closed_expired_;
  prometheus::Counter* closed_media_timeout_;
  prometheus::Counter* closed_final_timeout_;
  prometheus::Counter* closed_other_;
};

}  // namespace latchkey::relay
