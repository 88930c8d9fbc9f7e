#pragma once
// The fast path's eBPF object (relay.bpf.c, embedded at build time) loaded into the kernel: its two
// programs, not attached to any interface (attachment.h does that), and its maps, which user space
// writes and reads through this class. Every call is a bpf() syscall: made per latch, release and
// counter scrape, never per packet.
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "media-relay/fastpath/fast_path_abi.h"

struct lk_relay;  // the libbpf skeleton

namespace latchkey::relay {

class RelayProgram {
 public:
  // PERMISSION_DENIED when bpf() is refused (no CAP_BPF/CAP_SYS_ADMIN, a seccomp filter), else
  // UNAVAILABLE with libbpf's reason (e.g. the verifier of an older kernel).
  static absl::StatusOr<std::unique_ptr<RelayProgram>> Load();
  ~RelayProgram();
  RelayProgram(const RelayProgram&) = delete;
  RelayProgram& operator=(const RelayProgram&) = delete;

  int xdp_fd() const;
  int tc_fd() const;

  // Lets the programs forward until `until` (CLOCK_MONOTONIC, as bpf_ktime_get_ns()); see lk_control.
  absl::Status KeepAliveUntil(absl::Duration monotonic_until);
  // The MAC of an interface the program is attached to (XDP forwards only frames addressed to it).
  absl::Status SetInterfaceMac(int ifindex, const uint8_t (&mac)[6]);
  // Writes or replaces one direction's entry.
  absl::Status UpsertFlow(const lk_flow_key& key, const lk_flow_value& value);
  // Removes an entry; removing one that is not there is not an error.
  absl::Status RemoveFlow(const lk_flow_key& key);
  // The stream's counters, one element per possible CPU.
  absl::Status ReadStream(uint32_t stream, std::vector<lk_stream_stats>* per_cpu) const;
  // Zeroes the stream's counters on every CPU (before its index serves another stream).
  absl::Status ResetStream(uint32_t stream);
  int possible_cpus() const { return possible_cpus_; }

 private:
  RelayProgram() = default;
  lk_relay* skeleton_ = nullptr;
  int possible_cpus_ = 1;
};

// CLOCK_MONOTONIC now, the clock of bpf_ktime_get_ns().
absl::Duration MonotonicNow();

}  // namespace latchkey::relay
