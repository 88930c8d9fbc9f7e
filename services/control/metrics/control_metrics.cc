#include "services/control/metrics/control_metrics.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace latchkey::control {
namespace {

// "NAT_REASON_CONTACT_PRIVATE" -> "contact_private".
std::string LabelFromEnum(const std::string& name, absl::string_view prefix) {
  return absl::AsciiStrToLower(absl::StripPrefix(name, prefix));
}

}  // namespace

ControlMetrics::ControlMetrics(prometheus::Registry& registry) {
  auto& bindings = prometheus::BuildGauge()
                       .Name("latchkey_bindings")
                       .Help("Registered contacts held, by NAT verdict")
                       .Register(registry);
  bindings_behind_nat = &bindings.Add({{"nat_state", "behind_nat"}});
  bindings_not_behind_nat = &bindings.Add({{"nat_state", "not_behind_nat"}});

  auto& allocations = prometheus::BuildCounter()
                          .Name("latchkey_binding_allocations_total")
                          .Help("AllocateBinding calls that created or refreshed a binding")
                          .Register(registry);
  binding_created = &allocations.Add({{"result", "created"}});
  binding_refreshed = &allocations.Add({{"result", "refreshed"}});

  auto& removals = prometheus::BuildCounter()
                       .Name("latchkey_binding_removals_total")
                       .Help("Bindings removed, by reason")
                       .Register(registry);
  binding_released = &removals.Add({{"reason", "released"}});
  binding_unregistered = &removals.Add({{"reason", "unregistered"}});
  binding_expired = &removals.Add({{"reason", "expired"}});

  binding_source_changes = &prometheus::BuildCounter()
                                .Name("latchkey_binding_source_changes_total")
                                .Help("Refreshes that came from a new source address (NAT rebinding)")
                                .Register(registry)
                                .Add({});

  auto& reasons = prometheus::BuildCounter()
                      .Name("latchkey_nat_reasons_total")
                      .Help("NAT detection rules that fired, by rule")
                      .Register(registry);
  for (int r = v1::NatReason_MIN + 1; r <= v1::NatReason_MAX; ++r) {
    if (!v1::NatReason_IsValid(r)) continue;
    nat_reasons[r] = &reasons.Add(
        {{"reason", LabelFromEnum(v1::NatReason_Name(static_cast<v1::NatReason>(r)), "NAT_REASON_")}});
  }

  sessions_active = &prometheus::BuildGauge()
                         .Name("latchkey_sessions_active")
                         .Help("Relay sessions not yet ended")
                         .Register(registry)
                         .Add({});
  session_allocations = &prometheus::BuildCounter()
                             .Name("latchkey_session_allocations_total")
                             .Help("Sessions placed on a relay worker")
                             .Register(registry)
                             .Add({});
  auto& placement = prometheus::BuildCounter()
                        .Name("latchkey_session_placement_failures_total")
                        .Help("AllocateSession calls that found no worker for the call, by reason")
                        .Register(registry);
  placement_no_worker = &placement.Add({{"reason", "no_worker"}});
  placement_no_capacity = &placement.Add({{"reason", "no_capacity"}});
  placement_worker_error = &placement.Add({{"reason", "worker_error"}});

  auto& ends = prometheus::BuildCounter()
                   .Name("latchkey_session_ends_total")
                   .Help("Sessions ended, by reason")
                   .Register(registry);
  for (auto type : {v1::SESSION_EVENT_TYPE_RELEASED, v1::SESSION_EVENT_TYPE_EXPIRED, v1::SESSION_EVENT_TYPE_MEDIA_TIMEOUT,
                    v1::SESSION_EVENT_TYPE_FINAL_TIMEOUT, v1::SESSION_EVENT_TYPE_WORKER_LOST}) {
    session_ends[type] = &ends.Add({{"reason", LabelFromEnum(v1::SessionEventType_Name(type), "SESSION_EVENT_TYPE_")}});
  }

  auto& worker_states = prometheus::BuildGauge()
                            .Name("latchkey_workers")
                            .Help("Relay workers known to control, by state")
                            .Register(registry);
  for (auto state : {v1::WORKER_STATE_READY, v1::WORKER_STATE_DRAINING, v1::WORKER_STATE_LOST}) {
    workers[state] = &worker_states.Add({{"state", LabelFromEnum(v1::WorkerState_Name(state), "WORKER_STATE_")}});
  }
  workers_lost = &prometheus::BuildCounter()
                      .Name("latchkey_workers_lost_total")
                      .Help("Workers declared lost after missing heartbeats")
                      .Register(registry)
                      .Add({});
  auto& watch_ends = prometheus::BuildCounter()
                         .Name("latchkey_watch_streams_ended_total")
                         .Help("Watch streams ended by the server: slow (fell behind), limit (refused, too many "
                               "open), gone (resume token older than the change log keeps: re-list)")
                         .Register(registry);
  watch_streams_slow = &watch_ends.Add({{"reason", "slow"}});
  watch_streams_limited = &watch_ends.Add({{"reason", "limit"}});
  watch_streams_gone = &watch_ends.Add({{"reason", "gone"}});
  auto& redis_events_family = prometheus::BuildCounter()
                                  .Name("latchkey_redis_connection_events_total")
                                  .Help("The Redis store's connection: connected (after the ROLE check), failover (to "
                                        "another primary), timeout, not_primary (a demoted or read-only node left), "
                                        "dropped (every loss, those included)")
                                  .Register(registry);
  const char* redis_event_names[] = {"connected", "failover", "timeout", "not_primary", "dropped"};
  for (size_t i = 0; i < redis_events.size(); ++i) {
    redis_events[i] = &redis_events_family.Add({{"event", redis_event_names[i]}});
  }
  leader = &prometheus::BuildGauge()
                .Name("latchkey_control_leader")
                .Help("1 while this replica holds the lease to push keepalive assignments and run the sweepers")
                .Register(registry)
                .Add({});
  leadership_changes = &prometheus::BuildCounter()
                            .Name("latchkey_control_leadership_changes_total")
                            .Help("Times this replica took or lost the leader lease")
                            .Register(registry)
                            .Add({});
  workers_forgotten = &prometheus::BuildCounter()
                           .Name("latchkey_workers_forgotten_total")
                           .Help("Lost workers removed from the registry after forget_lost_workers_after")
                           .Register(registry)
                           .Add({});
  auto& adopted = prometheus::BuildCounter()
                      .Name("latchkey_adopted_sessions_total")
                      .Help("Calls announced by a registering worker that control did not hold, by result")
                      .Register(registry);
  sessions_adopted = &adopted.Add({{"result", "adopted"}});
  sessions_adopted_over_quota = &adopted.Add({{"result", "over_quota"}});
  sessions_adoption_refused = &adopted.Add({{"result", "refused_call_taken"}});

  bindings_unreachable = &prometheus::BuildGauge()
                              .Name("latchkey_bindings_unreachable")
                              .Help("Bindings whose keepalives went unanswered the failure threshold of times in a row")
                              .Register(registry)
                              .Add({});
  auto& reachability = prometheus::BuildCounter()
                           .Name("latchkey_binding_reachability_changes_total")
                           .Help("Bindings that became unreachable, or reachable again, by keepalive results")
                           .Register(registry);
  binding_became_unreachable = &reachability.Add({{"to", "unreachable"}});
  binding_became_reachable = &reachability.Add({{"to", "reachable"}});
  keepalive_resyncs = &prometheus::BuildCounter()
                           .Name("latchkey_keepalive_assignment_syncs_total")
                           .Help("Complete keepalive assignments sent to every worker after the worker set changed")
                           .Register(registry)
                           .Add({});
  keepalive_targets_sent = &prometheus::BuildCounter()
                                .Name("latchkey_keepalive_assignments_sent_total")
                                .Help("Keepalive targets sent to relay workers")
                                .Register(registry)
                                .Add({});
  keepalive_sync_failures = &prometheus::BuildCounter()
                                 .Name("latchkey_keepalive_assignment_failures_total")
                                 .Help("SetKeepalives calls a worker did not take (retried)")
                                 .Register(registry)
                                 .Add({});
}

}  // namespace latchkey::control
