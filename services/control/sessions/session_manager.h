#pragma once
// Calls: places each on a relay worker, keeps its two legs' remote media and relay ports, rewrites
// every SDP so media goes through the relay, and ends sessions on release, timeout or worker loss.
#include <array>
#include <functional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/grpc/auth.h"
#include "latchkey/v1/nat_control.pb.h"
#include "latchkey/v1/worker.pb.h"
#include "services/control/events/event_hub.h"
#include "services/control/metrics/control_metrics.h"
#include "services/control/nat/nat_detector.h"
#include "services/control/quota/owner_quota.h"
#include "services/control/sdp/session_description.h"
#include "services/control/store/store.h"
#include "services/control/workers/worker_registry.h"

namespace latchkey::control {

using SessionEvent = v1::WatchSessionsResponse;

struct SessionManagerOptions {
  absl::Duration offer_timeout = absl::Minutes(10);
  absl::Duration idle_timeout = absl::Hours(1);
  absl::Duration final_timeout = absl::Hours(12);
  absl::Duration media_timeout = absl::Seconds(60);
  absl::Duration ended_retention = absl::Seconds(30);
  absl::Duration worker_call_timeout = absl::Seconds(2);
  uint64_t max_sessions_per_pbx = 100'000;
};

class SessionManager {
 public:
  SessionManager(SessionManagerOptions options, Store* store, const NatDetector* detector, WorkerRegistry* workers,
                 ControlMetrics* metrics, EventHub<SessionEvent>* events, std::function<absl::Time()> clock);

  // A session belongs to the identity that created it: the same Call-ID from another PBX is another
  // call, and another PBX's session is NOT_FOUND to the caller (no oracle).
  absl::StatusOr<v1::AllocateSessionResponse> Allocate(const v1::AllocateSessionRequest& request,
                                                       const grpcutil::Caller& caller);
  absl::StatusOr<v1::AnswerSessionResponse> Answer(const v1::AnswerSessionRequest& request,
                                                   const grpcutil::Caller& caller);
  absl::StatusOr<v1::UpdateSessionResponse> Update(const v1::UpdateSessionRequest& request,
                                                   const grpcutil::Caller& caller);
  absl::StatusOr<v1::Session> Get(const std::string& session_id, const grpcutil::Caller& caller);
  absl::StatusOr<v1::ListSessionsResponse> List(const v1::ListSessionsRequest& request, const grpcutil::Caller& caller);
  absl::StatusOr<v1::Session> Release(const std::string& session_id, const grpcutil::Caller& caller);

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
  // Ends sessions past their offer, idle or final timeout; returns how many.
  size_t SweepExpired();

 private:
  absl::Mutex& CallStripe(absl::string_view call_id);
  absl::Mutex& SessionStripe(absl::string_view session_id);
  absl::StatusOr<v1::Session> Load(const std::string& session_id);
  // Load, as the caller may see it: another owner's session is NOT_FOUND.
  absl::StatusOr<v1::Session> LoadFor(const std::string& session_id, const grpcutil::Caller& caller);
  absl::Status Save(const v1::Session& session);
  absl::Time ExpiryOf(const v1::Session& session) const;
  // created_at + the session's final timeout (its option, else the configured default).
  absl::Time FinalDeadlineOf(const v1::Session& session) const;
  // Applies new SDP from one side to that leg (remote media, NAT verdict, latching mode); returns
  // the parsed SDP for the rewrite.
  absl::StatusOr<sdp::SessionDescription> DescribeLeg(v1::Session& session, v1::Side side, const std::string& sdp,
                                                      const v1::SocketAddress& signaling_source);
  // The SDP from `side`, rewritten for the other side: the relay ports the other side sends to.
  absl::StatusOr<std::string> RewriteForOtherSide(const v1::Session& session, v1::Side side,
                                                  const sdp::SessionDescription& description);
  // Tells the session's worker about changed remote media; updates the relay endpoints.
  absl::Status SyncWorker(v1::Session& session, uint32_t stream_count);
  // SDP from one side of an existing session (answer, re-offer, re-INVITE).
  absl::StatusOr<std::string> ApplyUpdate(v1::Session& session, v1::Side side, const std::string& sdp,
                                          const v1::SocketAddress& signaling_source);
  // Frees a session on its worker if the worker is responsive; true if the worker confirmed.
  bool DeleteOnWorker(const std::string& worker_id, const std::string& session_id, v1::SessionEventType reason,
                      v1::DeleteRelaySessionResponse* response);
  // Ends a session (worker told unless it is lost), keeps it queryable for a while, emits the event.
  void End(v1::Session& session, v1::SessionEventType reason, bool tell_worker);
  // `event` may carry the type-specific fields (side, source) and the time; type and session are set here.
  void Publish(v1::SessionEventType type, const v1::Session& session, SessionEvent event = {});

  const SessionManagerOptions options_;
  Store* store_;
  const NatDetector* detector_;
  WorkerRegistry* workers_;
  ControlMetrics* metrics_;
  EventHub<SessionEvent>* events_;
  std::function<absl::Time()> clock_;
  OwnerQuota quota_;
  // Sessions adopted from a worker past their owner's quota: kept, never counted, so never released.
  void MarkUncounted(const std::string& session_id);
  bool TakeUncounted(const std::string& session_id);
  absl::Mutex uncounted_mu_;
  absl::flat_hash_set<std::string> uncounted_ ABSL_GUARDED_BY(uncounted_mu_);
  // Serialise changes to one call without a global lock; always taken call stripe first.
  std::array<absl::Mutex, 64> call_stripes_;
  std::array<absl::Mutex, 64> session_stripes_;
};

}  // namespace latchkey::control
