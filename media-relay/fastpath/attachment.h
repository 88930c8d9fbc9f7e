#pragma once
// The fast path attached to one network interface, detached when destroyed.
//   XDP: native (driver) mode only, through a bpf_link, so the kernel detaches it also when the
//        process dies. Generic (skb) XDP is refused: tc does the same work better there.
//   tc:  a cls_bpf filter on the clsact ingress hook. Several relays on one host (disjoint port
//        ranges) each attach their own, at the priority `tc_priority` (their first media port), and
//        each passes on what is not its own; a restarted relay replaces its leftover (tc filters
//        outlive their process; lk_control keeps a leftover inert meanwhile). The clsact qdisc is
//        left in place: other filters may use it.
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "media-relay/fastpath/relay_program.h"

namespace latchkey::relay {

enum class FastPathMode { kOff, kXdp, kTc };
const char* FastPathModeName(FastPathMode mode);

class FastPathAttachment {
 public:
  // FAILED_PRECONDITION when the interface refuses (no native XDP, another XDP program there),
  // NOT_FOUND for an unknown interface, PERMISSION_DENIED without CAP_NET_ADMIN.
  static absl::StatusOr<std::unique_ptr<FastPathAttachment>> Attach(const RelayProgram& program, FastPathMode mode,
                                                                    int ifindex, uint16_t tc_priority = 1);
  ~FastPathAttachment();
  FastPathAttachment(const FastPathAttachment&) = delete;
  FastPathAttachment& operator=(const FastPathAttachment&) = delete;

  FastPathMode mode() const { return mode_; }
  int ifindex() const { return ifindex_; }

 private:
  FastPathAttachment(FastPathMode mode, int ifindex) : mode_(mode), ifindex_(ifindex) {}
  const FastPathMode mode_;
  const int ifindex_;
  uint16_t tc_priority_ = 1;
  int xdp_link_fd_ = -1;
};

}  // namespace latchkey::relay
