#include "media-relay/fastpath/attachment.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace latchkey::relay {
namespace {

// Ours on any interface: "lk" in the handle; the priority tells relays apart.
constexpr uint32_t kTcHandle = 0x6c6b;

std::string Interface(int ifindex) {
  char name[IF_NAMESIZE] = {};
  return ::if_indextoname(static_cast<unsigned>(ifindex), name) ? std::string(name) : absl::StrCat("#", ifindex);
}

absl::Status Refused(int error, absl::string_view what, int ifindex) {
  const std::string message = absl::StrCat(what, " on ", Interface(ifindex), ": ", std::strerror(error));
  switch (error) {
    case EPERM:
    case EACCES:
      return absl::PermissionDeniedError(message);
    case ENODEV:
    case ENOENT:
      return absl::NotFoundError(message);
    default:
      return absl::FailedPreconditionError(message);
  }
}

}  // namespace

const char* FastPathModeName(FastPathMode mode) {
  switch (mode) {
    case FastPathMode::kXdp:
      return "xdp";
    case FastPathMode::kTc:
      return "tc";
    default:
      return "off";
  }
}

absl::StatusOr<std::unique_ptr<FastPathAttachment>> FastPathAttachment::Attach(const RelayProgram& program,
                                                                               FastPathMode mode, int ifindex,
                                                                               uint16_t tc_priority) {
  std::unique_ptr<FastPathAttachment> attachment(new FastPathAttachment(mode, ifindex));
  attachment->tc_priority_ = tc_priority == 0 ? 1 : tc_priority;
  if (mode == FastPathMode::kXdp) {
    LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = XDP_FLAGS_DRV_MODE);
    const int fd = bpf_link_create(program.xdp_fd(), ifindex, BPF_XDP, &opts);
    if (fd < 0) return Refused(-fd, "cannot attach native XDP", ifindex);
    attachment->xdp_link_fd_ = fd;
    return attachment;
  }
  if (mode != FastPathMode::kTc) return absl::InvalidArgumentError("fast path: nothing to attach in mode off");
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  const int created = bpf_tc_hook_create(&hook);
  if (created != 0 && created != -EEXIST) return Refused(-created, "cannot add the clsact qdisc", ifindex);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = program.tc_fd(), .flags = BPF_TC_F_REPLACE, .handle = kTcHandle,
              .priority = attachment->tc_priority_);
  if (const int err = bpf_tc_attach(&hook, &opts); err != 0) {
    return Refused(-err, "cannot attach the tc filter", ifindex);
  }
  return attachment;
}

FastPathAttachment::~FastPathAttachment() {
  if (xdp_link_fd_ >= 0) ::close(xdp_link_fd_);
  if (mode_ != FastPathMode::kTc) return;
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex_, .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = tc_priority_);
  bpf_tc_detach(&hook, &opts);  // absent already (interface gone, never attached): nothing to do
  // The clsact qdisc stays: another relay's filter (or an operator's) may hang on it, and an empty
  // one costs nothing.
}

}  // namespace latchkey::relay
