#pragma once
// Keeps this worker known to control: registers (announcing every session it holds, so a restarted
// control loses nothing), heartbeats with its load, and registers again with backoff whenever control
// forgets it or cannot be reached.
#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "latchkey/v1/worker.grpc.pb.h"
#include "media-relay/agent/load_meter.h"
#include "media-relay/engine/engine_events.h"
#include "media-relay/keepalive/keepalive_sender.h"
#include "media-relay/sessions/session_table.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace latchkey::relay {

struct ControlClientOptions {
  std::string control_address;
  // Mutual TLS of the channel to control (whose certificate must name the control role).
  v1::TlsConfig tls;
  std::string worker_id;
  std::vector<std::string> advertised_ips;
  std::string version;
  // Media port range, announced for other relays' loop protection.
  uint32_t port_min = 0;
  uint32_t port_max = 0;
  // Called with the relays' media ranges from a heartbeat answer whenever they change.
  std::function<void(const google::protobuf::RepeatedPtrField<v1::RelayMediaRange>&)> on_relay_ranges;
};

// What exists only once the rest of the worker does; it may not change after Start().
struct ControlClientWiring {
  SessionTable* sessions = nullptr;
  const PacketEngine* engine = nullptr;         // rates for the load; may be null
  const KeepaliveSender* keepalives = nullptr;  // may be null
  std::string grpc_address;                     // where control reaches our RelayService
  // Keepalives: how this worker sends them and from which addresses (empty: it sends none).
  v1::KeepaliveSourceMode keepalive_mode = v1::KEEPALIVE_SOURCE_MODE_UNSPECIFIED;
  std::vector<std::string> keepalive_source_ips;
};

// Constructed first, so the engine and the keepalive sender can report to it from birth (events
// before Start() queue up); it registers once Start() gives it the rest.
class ControlClient : public EngineEventSink, public KeepaliveEventSink {
 public:
  ControlClient(ControlClientOptions options, prometheus::Registry& registry);
  ~ControlClient();

  // Starts registering and heartbeating; what `wiring` points at must outlive Stop().
  void Start(ControlClientWiring wiring);
  void Stop();
  bool registered() const;
  // The advertised addresses changed (host:/stun: discovery): registers again to announce them.
  void SetAdvertisedIps(std::vector<std::string> ips);
  // The worker drains to stop (SIGTERM): control's undrain no longer applies.
  void DrainForShutdown();
  // From the packet threads: queued and reported to control at once (bounded; oldest dropped).
  void OnEngineEvent(EngineEvent event) override;
  // From the keepalive thread: reachability changes, reported like the engine's events.
  void OnKeepaliveEvents(std::vector<KeepaliveEventOut> events) override;

 private:
  void Run();
  bool RegisterOnce();
  void ApplyRelayRanges(const google::protobuf::RepeatedPtrField<v1::RelayMediaRange>& relays);
  // Sleeps up to `d`; false if stopping.
  bool Sleep(absl::Duration d);
  // Waits until events are queued, `deadline` passes or stopping; false if stopping.
  bool WaitForWork(absl::Time deadline);
  // True (once) when a heartbeat should go out now.
  bool TakeHeartbeatNow();
  // Sends up to one batch; false if control did not take it (the events stay queued).
  bool ReportQueuedEvents();
  v1::WorkerLoad CurrentLoad();

  const ControlClientOptions options_;
  ControlClientWiring wiring_;  // set by Start, before the thread
  std::unique_ptr<LoadMeter> load_meter_;  // control client thread only
  std::unique_ptr<v1::WorkerRegistryService::Stub> stub_;
  prometheus::Counter* registrations_;
  prometheus::Counter* registration_failures_;
  prometheus::Counter* heartbeat_failures_;
  prometheus::Counter* events_reported_;
  prometheus::Counter* events_dropped_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  bool heartbeat_now_ ABSL_GUARDED_BY(mu_) = false;  // a drain to report before the interval ends
  std::string registration_id_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> advertised_ips_ ABSL_GUARDED_BY(mu_);
  absl::Duration heartbeat_interval_ ABSL_GUARDED_BY(mu_) = absl::Seconds(1);
  std::deque<EngineEvent> events_ ABSL_GUARDED_BY(mu_);  // deque: the oldest is dropped when full
  std::deque<KeepaliveEventOut> keepalive_events_ ABSL_GUARDED_BY(mu_);
  std::string relay_ranges_seen_;  // control client thread only
  bool drained_by_control_ = false;  // control client thread only
  std::atomic<bool> shutting_down_{false};
  absl::Time contest_window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int contests_in_window_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace latchkey::relay
