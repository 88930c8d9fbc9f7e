#include "media-relay/fastpath/relay_program.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"
#include "lk_relay.skel.h"

namespace latchkey::relay {
namespace {

absl::Status FromErrno(int error, absl::string_view what) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(error));
  if (error == EPERM || error == EACCES) return absl::PermissionDeniedError(message);
  if (error == ENOENT) return absl::NotFoundError(message);
  if (error == E2BIG || error == ENOMEM || error == ENOSPC) return absl::ResourceExhaustedError(message);
  return absl::UnavailableError(message);
}

// libbpf's messages (e.g. the kernel's reason for refusing an attachment, which the caller's status
// carries too) go to our log at debug level instead of stderr.
int LogLibbpf(libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[512];
  const int n = std::vsnprintf(line, sizeof(line), format, args);
  std::string_view text(line, n > 0 ? std::min<size_t>(static_cast<size_t>(n), sizeof(line) - 1) : 0);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  log::LogDebug("libbpf").Kv("message", std::string(text));
  return 0;
}

}  // namespace

absl::Duration MonotonicNow() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return absl::DurationFromTimespec(now);
}

absl::StatusOr<std::unique_ptr<RelayProgram>> RelayProgram::Load() {
  static const bool quiet = [] {
    libbpf_set_print(LogLibbpf);
    return true;
  }();
  (void)quiet;
  std::unique_ptr<RelayProgram> program(new RelayProgram());
  program->skeleton_ = lk_relay::open();
  if (program->skeleton_ == nullptr) return FromErrno(errno, "cannot open the fast path's eBPF object");
  if (int err = lk_relay::load(program->skeleton_); err != 0) {
    return FromErrno(-err, "cannot load the fast path's eBPF programs (bpf())");
  }
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return FromErrno(-cpus, "cannot count the possible CPUs");
  program->possible_cpus_ = cpus;
  return program;
}

RelayProgram::~RelayProgram() { lk_relay::destroy(skeleton_); }

int RelayProgram::xdp_fd() const { return bpf_program__fd(skeleton_->progs.lk_xdp_relay); }
int RelayProgram::tc_fd() const { return bpf_program__fd(skeleton_->progs.lk_tc_relay); }

absl::Status RelayProgram::KeepAliveUntil(absl::Duration monotonic_until) {
  const uint32_t zero = 0;
  const lk_control control{static_cast<__u64>(absl::ToInt64Nanoseconds(monotonic_until))};
  if (bpf_map_update_elem(bpf_map__fd(skeleton_->maps.lk_control), &zero, &control, BPF_ANY) != 0) {
    return FromErrno(errno, "fast path: cannot write lk_control");
  }
  return absl::OkStatus();
}

absl::Status RelayProgram::SetInterfaceMac(int ifindex, const uint8_t (&mac)[6]) {
  const uint32_t key = static_cast<uint32_t>(ifindex);
  lk_ifmac value{};
  std::memcpy(value.mac, mac, sizeof(value.mac));
  if (bpf_map_update_elem(bpf_map__fd(skeleton_->maps.lk_ifmacs), &key, &value, BPF_ANY) != 0) {
    return FromErrno(errno, "fast path: cannot write lk_ifmacs");
  }
  return absl::OkStatus();
}

absl::Status RelayProgram::UpsertFlow(const lk_flow_key& key, const lk_flow_value& value) {
  if (bpf_map_update_elem(bpf_map__fd(skeleton_->maps.lk_flows), &key, &value, BPF_ANY) != 0) {
    return FromErrno(errno, "fast path: cannot write a flow entry");
  }
  return absl::OkStatus();
}

absl::Status RelayProgram::RemoveFlow(const lk_flow_key& key) {
  if (bpf_map_delete_elem(bpf_map__fd(skeleton_->maps.lk_flows), &key) != 0 && errno != ENOENT) {
    return FromErrno(errno, "fast path: cannot remove a flow entry");
  }
  return absl::OkStatus();
}

absl::Status RelayProgram::ReadStream(uint32_t stream, std::vector<lk_stream_stats>* per_cpu) const {
  per_cpu->resize(static_cast<size_t>(possible_cpus_));
  if (bpf_map_lookup_elem(bpf_map__fd(skeleton_->maps.lk_stats), &stream, per_cpu->data()) != 0) {
    return FromErrno(errno, absl::StrCat("fast path: cannot read stream ", stream));
  }
  return absl::OkStatus();
}

absl::Status RelayProgram::ResetStream(uint32_t stream) {
  const std::vector<lk_stream_stats> zeros(static_cast<size_t>(possible_cpus_));
  if (bpf_map_update_elem(bpf_map__fd(skeleton_->maps.lk_stats), &stream, zeros.data(), BPF_ANY) != 0) {
    return FromErrno(errno, absl::StrCat("fast path: cannot reset stream ", stream));
  }
  return absl::OkStatus();
}

}  // namespace latchkey::relay
