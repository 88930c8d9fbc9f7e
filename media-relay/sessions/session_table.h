#pragma once
// The sessions a relay worker carries: for every media stream of every session, a bound RTP/RTCP
// socket pair per leg. Control-plane path only (create, update, delete), so one lock is fine; the
// packet engine will own the sockets' I/O.
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/net/ip_address.h"
#include "latchkey/v1/worker.pb.h"
#include "media-relay/ports/port_pool.h"
#include "media-relay/ports/udp_socket.h"

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
  SessionTable(SessionTableOptions options, PortPool pool);

  absl::StatusOr<v1::CreateRelaySessionResponse> Create(const v1::CreateRelaySessionRequest& request, absl::Time now);
  absl::StatusOr<v1::UpdateRelaySessionResponse> Update(const v1::UpdateRelaySessionRequest& request, absl::Time now);
  absl::StatusOr<v1::DeleteRelaySessionResponse> Delete(const std::string& session_id, absl::Time now);
  absl::StatusOr<v1::GetRelaySessionResponse> Get(const std::string& session_id) const;

  // Every session as control last described it, for re-registration.
  std::vector<v1::Session> Snapshot() const;
  v1::WorkerLoad Load(absl::Time now);
  void SetDraining(bool draining);
  bool draining() const;
  size_t size() const;

 private:
  struct LegPorts {
    uint16_t rtp_port = 0;
    UdpSocket rtp, rtcp;
  };
  struct Stream {
    LegPorts caller, callee;
    const MediaAddresses* caller_addresses = nullptr;
    const MediaAddresses* callee_addresses = nullptr;
    // rtcp-mux per leg: that endpoint sends RTCP to the RTP port.
    bool caller_mux = false;
    bool callee_mux = false;
  };
  struct Session {
    v1::Session record;
    std::vector<Stream> streams;
    absl::Time created_at;
  };

  const MediaAddresses& AddressesFor(int family) const;
  absl::Status AllocateLeg(const MediaAddresses& addresses, LegPorts* leg, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void UpdateMux(Session& session);
  absl::Status GrowStreams(Session& session, uint32_t stream_count, int caller_family, int callee_family,
                           absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseStreams(Session& session, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void FillEndpoints(const Session& session, google::protobuf::RepeatedPtrField<v1::RelayEndpoint>* caller,
                            google::protobuf::RepeatedPtrField<v1::RelayEndpoint>* callee);

  const SessionTableOptions options_;
  mutable absl::Mutex mu_;
  PortPool pool_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<Session>> sessions_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace latchkey::relay
