#pragma once
// What the session core asks of relay workers, behind an interface so that it can be unit-tested
// with a fake relay: place a new session (trying other workers when one fails), tell a worker about
// changed media, free a session, read live figures. WorkerRelaySessions does it over the workers'
// gRPC API, with a deadline on every call.
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "latchkey/v1/worker.grpc.pb.h"
#include "services/control/metrics/control_metrics.h"
#include "services/control/workers/worker_registry.h"

namespace latchkey::control {

inline constexpr uint32_t kPortsPerStream = 4;  // RTP + RTCP on each of the two legs

class RelaySessions {
 public:
  virtual ~RelaySessions() = default;
  // Places `session` on a worker with room for `streams` streams: sets its worker_id and both legs'
  // relay endpoints. UNAVAILABLE / RESOURCE_EXHAUSTED when no worker can take it; a worker's own
  // refusal keeps its code.
  virtual absl::Status Create(v1::Session& session, uint32_t streams, uint32_t callee_family) = 0;
  // Tells the session's worker its new remote media, as the state of store version `version`;
  // updates the relay endpoints. UNAVAILABLE when the worker is unreachable or no longer has the
  // session; ABORTED when the worker has a newer version already (another writer was first).
  virtual absl::Status Update(v1::Session& session, uint32_t streams, uint64_t version) = 0;
  // Frees a session on its worker if the worker is responsive; true if it confirmed (then
  // `response` has the final figures and `ports` go back to the worker's free count).
  virtual bool Delete(const std::string& worker_id, const std::string& session_id, v1::SessionEventType reason,
                      uint32_t ports, v1::DeleteRelaySessionResponse* response) = 0;
  // The session's live figures; false when its worker did not answer.
  virtual bool Stats(const v1::Session& session, v1::GetRelaySessionResponse* response) = 0;
};

class WorkerRelaySessions : public RelaySessions {
 public:
  WorkerRelaySessions(WorkerRegistry* workers, ControlMetrics* metrics, absl::Duration call_timeout,
                      std::function<absl::Time()> clock)
      : workers_(workers), metrics_(metrics), call_timeout_(call_timeout), clock_(std::move(clock)) {}

  absl::Status Create(v1::Session& session, uint32_t streams, uint32_t callee_family) override;
  absl::Status Update(v1::Session& session, uint32_t streams, uint64_t version) override;
  bool Delete(const std::string& worker_id, const std::string& session_id, v1::SessionEventType reason, uint32_t ports,
              v1::DeleteRelaySessionResponse* response) override;
  bool Stats(const v1::Session& session, v1::GetRelaySessionResponse* response) override;

 private:
  WorkerRegistry* workers_;
  ControlMetrics* metrics_;
  const absl::Duration call_timeout_;
  std::function<absl::Time()> clock_;
};

}  // namespace latchkey::control
