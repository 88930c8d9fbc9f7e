#pragma once
// What relay workers tell control about sessions: the calls a (re-)registering worker announces
// (checked, then adopted after a control restart, or ended when the worker lost them), latch and
// timeout reports, and the end of a lost worker's calls. Every change is a versioned write, so a
// report racing an RPC or another replica never undoes it.
#include <string>

#include "absl/time/time.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "latchkey/v1/worker.pb.h"
#include "services/control/metrics/control_metrics.h"
#include "services/control/sessions/relay_sessions.h"
#include "services/control/sessions/session_writer.h"
#include "services/control/store/session_store.h"
#include "services/control/workers/worker_registry.h"

namespace latchkey::control {

class WorkerSessions {
 public:
  // `durable_store`: the store outlives control restarts (Redis), so a session it does not know was
  // never placed and is not adopted from a worker's word.
  WorkerSessions(SessionStore* store, SessionWriter* writer, RelaySessions* relay, const WorkerRegistry* workers,
                 ControlMetrics* metrics, uint64_t max_sessions_per_pbx, bool durable_store = false)
      : store_(store),
        writer_(writer),
        relay_(relay),
        workers_(workers),
        metrics_(metrics),
        max_sessions_per_pbx_(max_sessions_per_pbx),
        durable_store_(durable_store) {}

  // What a worker may announce on (re-)registration: none of the sessions may be another live
  // worker's, and their relay ports must lie in the worker's own range (PERMISSION_DENIED naming the
  // session). Checked before the registration changes anything.
  absl::Status CheckAnnounced(const std::string& worker_id, uint32_t port_min, uint32_t port_max,
                              const google::protobuf::RepeatedPtrField<v1::Session>& sessions);
  // A worker (re-)registered announcing the sessions it carries: adopt those control does not know
  // (after a control restart) and end those it should carry but no longer does.
  // `registered_at`: taken before the registration made the worker placeable again.
  void AdoptFromWorker(const std::string& worker_id, const google::protobuf::RepeatedPtrField<v1::Session>& sessions,
                       absl::Time registered_at);
  // Latch and timeout reports from a worker.
  void HandleWorkerEvent(const std::string& worker_id, const v1::WorkerEvent& event);
  // Ends every session of a lost worker with WORKER_LOST.
  void WorkerLost(const std::string& worker_id);

 private:
  // Adopts one announced session; false if refused or already known.
  bool Adopt(const std::string& worker_id, const v1::Session& announced);
  // Every live session of a worker, page by page.
  std::vector<v1::Session> LiveSessionsOf(const std::string& worker_id);

  SessionStore* store_;
  SessionWriter* writer_;
  RelaySessions* relay_;
  const WorkerRegistry* workers_;
  ControlMetrics* metrics_;
  const uint64_t max_sessions_per_pbx_;
  const bool durable_store_;
};

}  // namespace latchkey::control
