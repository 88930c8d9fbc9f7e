#pragma once
// The relay's kernel fast path as the rest of the relay sees it: the loaded program attached to
// the interfaces carrying the media addresses in the mode chosen at start, the stream counter
// slots, the egress of each media address, and the aliveness deadline. Thread-safe.
//
// Mode choice (--fast_path): auto tries native XDP on every media interface, then tc, then runs
// without (the reason is logged and kept); xdp or tc fail the start if they cannot attach; off
// loads nothing. A wildcard media address has no interface to attach to: auto runs without. auto
// takes tc on veth: XDP_TX there delivers only when the peer runs an XDP program too, which the
// relay cannot know (a silent loss the counters would not show); ask for xdp to have it anyway.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/net/ip_address.h"
#include "latchkey/v1/config.pb.h"
#include "media-relay/fastpath/attachment.h"
#include "media-relay/fastpath/flow_plan.h"
#include "media-relay/fastpath/kernel_stream_figures.h"
#include "media-relay/fastpath/next_hop.h"
#include "media-relay/fastpath/relay_program.h"

namespace latchkey::relay {

struct FastPathOptions {
  v1::FastPath requested = v1::FAST_PATH_OFF;
  std::vector<net::IpAddress> media_ips;
  uint16_t tc_priority = 1;  // the relay's first media port: unique per host
};

class FastPath {
 public:
  // INVALID_ARGUMENT or FAILED_PRECONDITION (naming fast_path) when an explicit mode cannot work.
  static absl::StatusOr<std::unique_ptr<FastPath>> Start(const FastPathOptions& options);
  ~FastPath();

  FastPathMode mode() const { return mode_; }
  bool on() const { return mode_ != FastPathMode::kOff; }
  // Why auto runs without (empty otherwise).
  const std::string& fallback_reason() const { return fallback_reason_; }

  // Pushes the aliveness deadline forward; call at least every second.
  void KeepAlive();

  // The egress for media leaving from `relay_ip` to `destination`. tc: the interface of
  // `relay_ip` and no MAC (the program asks the kernel's route and neighbour tables per packet,
  // so a gateway or route change is followed at once). XDP: the route's interface, which must be
  // one the program is attached to (else ifindex 0: the direction stays on the socket path), and
  // the next hop's MAC when the kernel knows it (netlink, cached for a few seconds).
  FlowEgress EgressFor(const net::IpAddress& relay_ip, const net::IpAddress& destination);

  // Counter slots for streams in the kernel; nullopt when all are taken.
  std::optional<uint32_t> AcquireStream();
  void ReleaseStream(uint32_t stream);

  absl::Status Upsert(const FlowEntry& entry) { return program_->UpsertFlow(entry.key, entry.value); }
  absl::Status Remove(const lk_flow_key& key) { return program_->RemoveFlow(key); }
  // nullopt when the kernel could not be read (nothing to fold then).
  std::optional<KernelStreamFigures> Read(uint32_t stream) const;
  // Detaches and makes every entry inert at once (the relay is stopping; its packet threads no
  // longer keep the entries in step). The mode stays as it was for the metrics.
  void Shutdown();

 private:
  struct Interface {
    std::string name;
    int ifindex = 0;
    bool loopback = false;
    std::array<uint8_t, 6> mac{};
  };
  FastPath() = default;
  absl::Status AttachAll(FastPathMode mode, uint16_t tc_priority);

  FastPathMode mode_ = FastPathMode::kOff;
  std::string fallback_reason_;
  std::unique_ptr<RelayProgram> program_;
  absl::flat_hash_map<net::IpAddress, Interface> interfaces_;  // by media address
  absl::flat_hash_map<int, std::array<uint8_t, 6>> macs_;       // every interface's, by index
  absl::flat_hash_set<int> attached_;                           // interfaces the program is on
  std::vector<std::unique_ptr<FastPathAttachment>> attachments_;

  mutable absl::Mutex mu_;
  std::vector<uint32_t> free_streams_ ABSL_GUARDED_BY(mu_);  // FIFO: a slot rests before reuse
  size_t free_head_ ABSL_GUARDED_BY(mu_) = 0;
  struct CachedHop {
    absl::StatusOr<NextHop> hop;
    absl::Time until;
  };
  absl::flat_hash_map<std::pair<uint32_t, uint32_t>, CachedHop> hops_ ABSL_GUARDED_BY(mu_);  // (source, destination)
};

}  // namespace latchkey::relay
