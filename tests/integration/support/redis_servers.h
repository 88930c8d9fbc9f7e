#pragma once
// Real redis-server and redis-sentinel processes on free loopback ports for integration tests, each in its own
// temporary directory. Everything is stopped (SIGKILL, also when paused) and its directory removed when the object
// dies, so a failing test leaves nothing behind. Readiness is polled with redis-cli, every wait is bounded.
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/integration/support/process.h"

namespace latchkey::testing {

// Empty when redis-server, redis-sentinel and redis-cli are installed; otherwise what is missing (for GTEST_SKIP).
std::string RedisMissingReason();

// Polls `condition` every `interval` until it holds or `timeout` passes; returns whether it held.
bool PollUntil(const std::function<bool()>& condition, absl::Duration timeout,
               absl::Duration interval = absl::Milliseconds(20));

// `redis-cli -h 127.0.0.1 -p PORT ARGS...`, killed after `timeout` (a paused server never answers).
CommandResult RedisCli(int port, const std::vector<std::string>& args, absl::Duration timeout = absl::Seconds(2));

// A directory under /tmp, removed with its contents when the object dies.
class TempDir {
 public:
  static absl::StatusOr<TempDir> Create(const std::string& prefix);
  TempDir() = default;
  ~TempDir();
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class RedisServer {
 public:
  // `--port P --bind 127.0.0.1 --save "" --appendonly no --dir TMP --daemonize no` plus `extra_args`, and
  // `--replicaof 127.0.0.1 PRIMARY` when `replica_of` is a port. Waits until it answers PING.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(const std::vector<std::string>& extra_args = {},
                                                            int replica_of = 0);
  ~RedisServer();

  int port() const { return port_; }
  pid_t pid() const { return process_.pid(); }
  void Pause();   // SIGSTOP
  void Resume();  // SIGCONT
  void Kill();    // SIGKILL, and reap
  bool paused() const { return paused_; }
  CommandResult Cli(const std::vector<std::string>& args, absl::Duration timeout = absl::Seconds(2)) const;
  // The first word of ROLE ("master", "slave"), or "" when it does not answer.
  std::string Role() const;
  std::string Log() const { return process_.ReadLog(); }

 private:
  RedisServer() = default;
  TempDir dir_;
  ChildProcess process_;
  int port_ = 0;
  bool paused_ = false;
};

class RedisSentinel {
 public:
  // A sentinel monitoring `master_name` at 127.0.0.1:`primary_port` (quorum 2, down-after 1000 ms, failover-timeout
  // 5000 ms). Waits until it answers PING.
  static absl::StatusOr<std::unique_ptr<RedisSentinel>> Start(const std::string& master_name, int primary_port);
  ~RedisSentinel();

  int port() const { return port_; }
  CommandResult Cli(const std::vector<std::string>& args, absl::Duration timeout = absl::Seconds(2)) const;
  // SENTINEL get-master-addr-by-name: the port of the master this sentinel names, 0 if none.
  int MasterPort(const std::string& master_name) const;
  std::string Log() const { return process_.ReadLog(); }

 private:
  RedisSentinel() = default;
  TempDir dir_;
  ChildProcess process_;
  int port_ = 0;
};

// One primary, `replicas` replicas and `sentinels` sentinels, all on loopback.
struct RedisHaOptions {
  int replicas = 1;
  int sentinels = 3;
  std::string master_name = "latchkey";
  std::vector<std::string> server_args;  // for every server, e.g. {"--min-replicas-to-write", "1"}
};

class RedisHa {
 public:
  // Starts everything and waits (bounded) until every replica is in sync and every sentinel knows every replica
  // and every other sentinel, so that a failover can happen.
  static absl::StatusOr<std::unique_ptr<RedisHa>> Start(const RedisHaOptions& options);

  // 0 is the initial primary, 1.. the replicas.
  RedisServer& server(size_t i) { return *servers_[i]; }
  size_t server_count() const { return servers_.size(); }
  RedisSentinel& sentinel(size_t i) { return *sentinels_[i]; }
  // redis+sentinel://127.0.0.1:P1,.../NAME
  std::string Target() const;
  const std::string& master_name() const { return master_name_; }
  // The master's port as most sentinels name it right now (0 if no majority answers).
  int MasterPort() const;
  // Index in server() of the server on `port`, -1 if none.
  int IndexOfPort(int port) const;
  // A readable dump of every process's log tail, for failure messages.
  std::string Logs() const;

 private:
  RedisHa() = default;
  std::string master_name_;
  std::vector<std::unique_ptr<RedisServer>> servers_;
  std::vector<std::unique_ptr<RedisSentinel>> sentinels_;
};

}  // namespace latchkey::testing
