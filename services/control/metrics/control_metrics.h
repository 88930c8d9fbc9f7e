#pragma once
// Every counter and gauge latchkey-control exports (RPC counts and latencies come from the gRPC
// interceptor in common/grpc). Labels take values from small fixed sets only: never per call or AOR.
#include <array>
#include <memory>

#include "latchkey/v1/nat_control.pb.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace latchkey::control {

struct ControlMetrics {
  explicit ControlMetrics(prometheus::Registry& registry);

  // latchkey_bindings{nat_state}
  prometheus::Gauge* bindings_behind_nat;
  prometheus::Gauge* bindings_not_behind_nat;
  // latchkey_binding_allocations_total{result="created|refreshed"}
  prometheus::Counter* binding_created;
  prometheus::Counter* binding_refreshed;
  // latchkey_binding_removals_total{reason="released|unregistered|expired"}
  prometheus::Counter* binding_released;
  prometheus::Counter* binding_unregistered;
  prometheus::Counter* binding_expired;
  // latchkey_binding_source_changes_total: a refresh from a new source address (NAT rebinding).
  prometheus::Counter* binding_source_changes;
  // latchkey_nat_reasons_total{reason}: how often each NAT rule fired.
  std::array<prometheus::Counter*, v1::NatReason_ARRAYSIZE> nat_reasons{};

  // latchkey_sessions_active
  prometheus::Gauge* sessions_active;
  // latchkey_session_allocations_total
  prometheus::Counter* session_allocations;
  // latchkey_session_placement_failures_total{reason="no_worker|no_capacity|worker_error"}
  prometheus::Counter* placement_no_worker;
  prometheus::Counter* placement_no_capacity;
  prometheus::Counter* placement_worker_error;
  // latchkey_session_ends_total{reason}
  std::array<prometheus::Counter*, v1::SessionEventType_ARRAYSIZE> session_ends{};

  // latchkey_workers{state}
  std::array<prometheus::Gauge*, v1::WorkerState_ARRAYSIZE> workers{};
  // latchkey_workers_lost_total
  prometheus::Counter* workers_lost;

  // latchkey_watch_streams_ended_total{reason="slow|limit|gone"}: streams cut off for falling behind,
  // refused at the open-stream limits, or resumed from a position the log no longer keeps.
  prometheus::Counter* watch_streams_slow;
  prometheus::Counter* watch_streams_limited;
  prometheus::Counter* watch_streams_gone;
  // latchkey_redis_connection_events_total{event="connected|failover|timeout|not_primary|dropped"}:
  // the store's connection (redis_client.h RedisConnectionEvent), indexed by that enum.
  std::array<prometheus::Counter*, 5> redis_events{};
  // latchkey_control_leader, latchkey_control_leadership_changes_total
  prometheus::Gauge* leader;
  prometheus::Counter* leadership_changes;
  // latchkey_workers_forgotten_total: lost workers removed from the registry.
  prometheus::Counter* workers_forgotten;
  // latchkey_adopted_sessions_total{result}: calls a registering worker announced that control did
  // not know: adopted, adopted past the owner's quota (not counted in it), or refused (they would
  // take a live call's Call-ID).
  prometheus::Counter* sessions_adopted;
  prometheus::Counter* sessions_adopted_over_quota;
  prometheus::Counter* sessions_adoption_refused;

  // latchkey_bindings_unreachable: bindings whose keepalives failed the threshold.
  prometheus::Gauge* bindings_unreachable;
  // latchkey_binding_reachability_changes_total{to="unreachable|reachable"}
  prometheus::Counter* binding_became_unreachable;
  prometheus::Counter* binding_became_reachable;
  // latchkey_keepalive_assignment_syncs_total: complete keepalive sets sent after worker changes.
  prometheus::Counter* keepalive_resyncs;
  // latchkey_keepalive_assignments_sent_total: keepalive targets sent to workers.
  prometheus::Counter* keepalive_targets_sent;
  // latchkey_keepalive_assignment_failures_total: SetKeepalives calls a worker did not take.
  prometheus::Counter* keepalive_sync_failures;
};

}  // namespace latchkey::control
