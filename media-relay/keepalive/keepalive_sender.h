#pragma once
// Sends the keepalives of the bindings control assigned to this worker and watches their answers,
// on one thread of its own (never a packet thread: a keepalive may wait, media may not).
//
// REGISTRAR_SOURCE: each OPTIONS leaves a raw socket (IP_HDRINCL) with the registrar's ip:port as its
// source, so an address-and-port-filtering NAT lets it in (it looks like the registrar's traffic),
// and the phone's reply, addressed to the registrar, is seen as a copy on a raw IPPROTO_UDP socket
// (a BPF filter keeps only the registrar ports) without being taken from the PBX. Needs CAP_NET_RAW
// and the registrar's address on this host or pod. IPv4.
// OWN_SOCKET: an ordinary UDP socket of the worker's; reaches only endpoint-independent-filtering
// NATs.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/net/socket_address.h"
#include "latchkey/v1/worker.pb.h"
#include "media-relay/keepalive/keepalive_table.h"
#include "media-relay/keepalive/target_policy.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace latchkey::relay {

class KeepaliveEventSink {
 public:
  virtual ~KeepaliveEventSink() = default;
  virtual void OnKeepaliveEvents(std::vector<KeepaliveEventOut> events) = 0;
};

struct KeepaliveSenderOptions {
  v1::KeepaliveSourceMode mode = v1::KEEPALIVE_SOURCE_MODE_REGISTRAR_SOURCE;
  // OWN_SOCKET: where the worker's SIP socket binds (port 0: any).
  net::SocketAddress own_socket;
  // Keepalives sent per wake-up at most (the rest follow at once: this bounds a batch, not the rate).
  size_t batch = 256;
  // What the relay agrees to keep alive, whatever control asks (target_policy.h). `mode` is copied in.
  KeepaliveTargetPolicy policy;
};

class KeepaliveSender {
 public:
  // Opens the sockets (REGISTRAR_SOURCE: raw ones, which fail without CAP_NET_RAW).
  static absl::StatusOr<std::unique_ptr<KeepaliveSender>> Create(KeepaliveSenderOptions options,
                                                                 prometheus::Registry& registry,
                                                                 KeepaliveEventSink* sink);
  ~KeepaliveSender();

  void Start();
  void Stop();

  // Control's changes (SetKeepalives). Valid targets the policy accepts are applied; each refused one
  // is listed in `response` ("binding_id: field: why"), counted by reason and not held. A request
  // whose fencing_token is older than the newest taken is refused whole (FAILED_PRECONDITION): it
  // comes from a control replica that has lost the keepalive lease.
  absl::Status Apply(const v1::SetKeepalivesRequest& request, v1::SetKeepalivesResponse* response);
  size_t size() const;
  v1::KeepaliveSourceMode mode() const { return options_.mode; }
  // OWN_SOCKET: the bound address.
  net::SocketAddress own_address() const { return own_address_; }

 private:
  KeepaliveSender(KeepaliveSenderOptions options, prometheus::Registry& registry, KeepaliveEventSink* sink);
  void Run();
  // Collects, writes and sends what is due; true if more is due already.
  bool SendDue(absl::Time now);
  void Receive(absl::Time now);
  void UpdateRawFilter(const std::vector<DueKeepalive>& due);
  const std::string& HostText(const net::IpAddress& ip);

  struct Buffers;

  const KeepaliveSenderOptions options_;
  KeepaliveEventSink* sink_;
  std::unique_ptr<Buffers> buffers_;  // the sender thread's
  int send_fd_ = -1;
  int recv_fd_ = -1;  // own socket: same as send_fd_
  int wake_fd_ = -1;
  net::SocketAddress own_address_;
  std::vector<uint16_t> filtered_ports_;  // thread only
  // IP -> its text for Via/From (a few registrar addresses): no formatting per keepalive.
  std::vector<std::pair<net::IpAddress, std::string>> host_texts_;

  mutable absl::Mutex mu_;
  KeepaliveTable table_ ABSL_GUARDED_BY(mu_);
  bool replacing_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t fencing_token_ ABSL_GUARDED_BY(mu_) = 0;  // the newest taken

  std::atomic<bool> running_{false};
  std::thread thread_;

  prometheus::Counter* fenced_;
  prometheus::Counter* sent_;
  prometheus::Counter* send_errors_;
  prometheus::Counter* unsendable_;
  prometheus::Counter* misses_;
  prometheus::Counter* unmatched_;
  prometheus::Counter* malformed_;
  prometheus::Counter* to_unreachable_;
  prometheus::Counter* to_reachable_;
  std::array<prometheus::Counter*, 6> responses_{};  // 1xx..6xx
  prometheus::Histogram* rtt_;
  prometheus::Histogram* lag_;
  prometheus::Gauge* targets_;
  prometheus::Family<prometheus::Counter>* refused_;
  prometheus::Counter* intervals_raised_;
};

}  // namespace latchkey::relay
