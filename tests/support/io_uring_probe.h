#pragma once
// Whether this kernel and seccomp profile let a process set up io_uring at all: tests of the
// io_uring packet I/O skip where it cannot exist (and fail where it can but does not work).
#include <linux/io_uring.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace latchkey::testing {

inline bool KernelAllowsIoUring() {
  io_uring_params params{};
  const long fd = ::syscall(__NR_io_uring_setup, 4, &params);
  if (fd < 0) return false;
  ::close(static_cast<int>(fd));
  return true;
}

}  // namespace latchkey::testing
