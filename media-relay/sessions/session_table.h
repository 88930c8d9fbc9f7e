#pragma once
// The sessions a relay worker carries: for every media stream of every session, a bound RTP/RTCP
// socket pair per leg, handed to the packet engine. Control-plane path only (create, update, delete,
// query), so one lock is fine; packets never touch it.
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/net/ip_address.h"
#include "latchkey/v1/worker.pb.h"
#include "media-relay/engine/packet_engine.h"
#include "media-relay/engine/relay_stream.h"
#include "media-relay/ports/port_pool.h"
#include "media-relay/sessions/leg_targets.h"

namespace latchkey::relay {

struct MediaAddresses {
  net::IpAddress bind;        // local address the sockets bind to
  net::IpAddress advertised;  // written into SDP (may differ behind 1:1 NAT, e.g. a cloud public IP)
};

struct SessionTableOptions {
  std::vector<MediaAddresses> addresses;  // at least one; at most one per family is used
  uint32_t max_sessions = 10000;
};

class SessionTable {
 public:
  // `engine` relays the media; null leaves the sockets idle (tests of the bookkeeping alone).
  SessionTable(SessionTableOptions options, PortPool pool, PacketEngine* engine = nullptr);
  ~SessionTable();

  absl::StatusOr<v1::CreateRelaySessionResponse> Create(const v1::CreateRelaySessionRequest& request, absl::Time now);
  absl::StatusOr<v1::UpdateRelaySessionResponse> Update(const v1::UpdateRelaySessionRequest& request, absl::Time now);
  absl::StatusOr<v1::DeleteRelaySessionResponse> Delete(const std::string& session_id, absl::Time now);
  absl::StatusOr<v1::GetRelaySessionResponse> Get(const std::string& session_id) const;

  // Every session as control last described it, for re-registration.
  std::vector<v1::Session> Snapshot() const;
  v1::WorkerLoad Load(absl::Time now);
  void SetDraining(bool draining);
  // A host:/stun: advertised address changed: new sessions and later offers/answers write `ip` into
  // SDP for media address `index` (the old one was the relay's too, so it stays loop-protected).
  void SetAdvertised(size_t index, const net::IpAddress& ip);
  bool draining() const;
  size_t size() const;
  // Answered sessions older than `grace` whose media flows one way only: one leg has sent nothing
  // (the classic NAT symptom). O(sessions); sampled for a gauge, not per packet.
  size_t CountOneWay(absl::Time now, absl::Duration grace) const;

 private:
  struct Stream {
    std::shared_ptr<RelayStream> relay;  // sockets, latches and counters, shared with the engine
    const MediaAddresses* caller_addresses = nullptr;
    const MediaAddresses* callee_addresses = nullptr;
  };
  struct Session {
    // Control's description, kept serialized: a parsed v1::Session costs ~2 KB in nested messages,
    // and it is read only on the control path (updates, re-registration).
    std::string record;
    // The control-store version this state corresponds to: an update carrying an older one lost a
    // race between control replicas and is refused, so the relay never goes back to stale media.
    uint64_t version = 0;
    std::vector<Stream> streams;
    absl::Time created_at;
    absl::Time answered_at = absl::InfiniteFuture();  // for the one-way count
    std::shared_ptr<SessionActivity> activity = std::make_shared<SessionActivity>();
  };

  const MediaAddresses& AddressesFor(int family) const;
  absl::Status AllocateLeg(const MediaAddresses& addresses, RelayLeg* leg, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status GrowStreams(Session& session, const v1::Session& record, uint32_t stream_count, int callee_family,
                           absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseStreams(Session& session, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands new streams to the engine and re-configures the existing ones from the session record.
  void SyncEngine(Session& session, const v1::Session& record, size_t attached_before);
  static void Describe(Session& session, const v1::Session& record);
  static void FillEndpoints(const Session& session, const v1::Session& record,
                            google::protobuf::RepeatedPtrField<v1::RelayEndpoint>* caller,
                            google::protobuf::RepeatedPtrField<v1::RelayEndpoint>* callee);
  static void FillStats(const Session& session, v1::LegStats* caller, v1::LegStats* callee);

  SessionTableOptions options_;  // addresses[i].advertised changes under mu_; nothing else does
  PacketEngine* engine_;
  RelayAddressing addressing_;
  mutable absl::Mutex mu_;
  PortPool pool_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace latchkey::relay
