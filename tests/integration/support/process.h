#pragma once
// A child process for integration tests: started with fork/exec, output to a log file, stopped (and
// killed if it will not stop) when the object dies, so a failing test leaves nothing running.
#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace latchkey::testing {

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess();
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // argv[0] is the program path. stdout and stderr go to `log_path`.
  static absl::StatusOr<ChildProcess> Start(const std::vector<std::string>& argv, const std::string& log_path);

  pid_t pid() const { return pid_; }
  bool running();
  // Sends `signal`, waits up to `timeout`, then SIGKILLs. Returns the exit status (as from waitpid).
  int Stop(int signal, absl::Duration timeout = absl::Seconds(10));
  // Waits for exit up to `timeout`; -1 if still running.
  int Wait(absl::Duration timeout);
  const std::string& log_path() const { return log_path_; }
  std::string ReadLog() const;

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string log_path_;
};

// Runs a command to completion (bounded by `timeout`) and returns its exit code and output.
struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};
CommandResult RunCommand(const std::vector<std::string>& argv, absl::Duration timeout = absl::Seconds(30));

// A TCP port that was free a moment ago on 127.0.0.1.
int FreeTcpPort();
// An even base port with `count` consecutive UDP ports free on 127.0.0.1 (for a relay's range).
int FreeUdpRange(int count);

}  // namespace latchkey::testing
