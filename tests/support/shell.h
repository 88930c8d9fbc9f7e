#pragma once
// Test helpers that reach outside the process: a shell command's output, and a network namespace
// of the calling process's own (for tests that make interfaces, attach programs or run routers:
// nothing outside it is touched, and it vanishes with the process).
#include <sched.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace latchkey::testing {

// Standard output and error of `command` (run by /bin/sh).
inline std::string Shell(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return output;
  char chunk[512];
  while (size_t n = std::fread(chunk, 1, sizeof(chunk), pipe)) output.append(chunk, n);
  ::pclose(pipe);
  return output;
}

// Moves this process (and what it starts later) into a new network namespace with loopback up.
// Returns why not ("" on success): tests skip with it.
inline std::string EnterPrivateNetworkNamespace() {
  if (::unshare(CLONE_NEWNET) != 0) {
    return std::string("cannot make a network namespace (needs root): ") + std::strerror(errno);
  }
  if (Shell("ip link set lo up && echo up") != "up\n") return "cannot bring loopback up in the new namespace";
  return "";
}

}  // namespace latchkey::testing
