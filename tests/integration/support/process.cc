#include "tests/integration/support/process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace latchkey::testing {

ChildProcess::~ChildProcess() {
  if (pid_ > 0) Stop(SIGKILL, absl::Seconds(5));
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(other.pid_), status_(other.status_), log_path_(std::move(other.log_path_)) {
  other.pid_ = -1;
}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) Stop(SIGKILL, absl::Seconds(5));
    pid_ = other.pid_;
    status_ = other.status_;
    log_path_ = std::move(other.log_path_);
    other.pid_ = -1;
  }
  return *this;
}

absl::StatusOr<ChildProcess> ChildProcess::Start(const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    // If the test process dies (a ctest timeout kills it), its servers must not outlive it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    // Children must not inherit a blocked signal mask from a test that blocked signals.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(args[0], args.data());
    _exit(127);
  }
  ChildProcess child;
  child.pid_ = pid;
  child.log_path_ = log_path;
  return child;
}

bool ChildProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = status;
    pid_ = -1;
    return false;
  }
  return true;
}

int ChildProcess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (running()) {
    if (absl::Now() > deadline) return -1;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return status_;
}

int ChildProcess::Stop(int signal, absl::Duration timeout) {
  if (pid_ <= 0) return status_;
  ::kill(pid_, signal);
  if (Wait(timeout) == -1 && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    Wait(absl::Seconds(5));
  }
  return status_;
}

std::string ChildProcess::ReadLog() const {
  std::ifstream in(log_path_);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

CommandResult RunCommand(const std::vector<std::string>& argv, absl::Duration timeout) {
  char path[] = "/tmp/latchkey-cmd-XXXXXX";
  int fd = ::mkstemp(path);
  if (fd >= 0) ::close(fd);
  CommandResult result;
  auto child = ChildProcess::Start(argv, path);
  if (!child.ok()) return result;
  int status = child->Wait(timeout);
  if (status == -1) status = child->Stop(SIGKILL);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.output = child->ReadLog();
  ::unlink(path);
  return result;
}

namespace {

bool PortFree(int type, int port) {
  int fd = ::socket(AF_INET, type, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

int FreeTcpPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

int FreeUdpRange(int count) {
  // Random bases below the kernel's ephemeral range (32768+) so tests running at once rarely collide.
  // Ranges handed out in this process never overlap: a relay binds its ports only as calls come, so
  // a second relay of the same test could otherwise get the first one's range (and control refuses
  // a worker whose media range overlaps another's on the same address).
  static absl::Mutex mu(absl::kConstInit);
  static std::vector<std::pair<int, int>>* handed = new std::vector<std::pair<int, int>>();
  std::mt19937 rng(static_cast<unsigned>(::getpid()) ^ static_cast<unsigned>(absl::ToUnixNanos(absl::Now())));
  absl::MutexLock lock(&mu);
  for (int attempt = 0; attempt < 200; ++attempt) {
    int base = 10000 + 2 * static_cast<int>(rng() % 10000);
    bool free = true;
    for (const auto& [first, last] : *handed) free = free && (base + count - 1 < first || base > last);
    for (int p = base; p < base + count && free; ++p) free = PortFree(SOCK_DGRAM, p);
    if (!free) continue;
    handed->emplace_back(base, base + count - 1);
    return base;
  }
  return 0;
}

}  // namespace latchkey::testing
