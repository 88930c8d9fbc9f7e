#include "tests/integration/support/redis_servers.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace latchkey::testing {
namespace {

constexpr char kRedisServer[] = "/usr/bin/redis-server";
constexpr char kRedisSentinel[] = "/usr/bin/redis-sentinel";
constexpr char kRedisCli[] = "/usr/bin/redis-cli";
constexpr absl::Duration kStartTimeout = absl::Seconds(10);

std::string Tail(const std::string& text, size_t max = 1500) {
  return text.size() <= max ? text : text.substr(text.size() - max);
}

bool AnswersPing(int port) {
  CommandResult r = RedisCli(port, {"PING"}, absl::Seconds(1));
  return r.exit_code == 0 && absl::StartsWith(r.output, "PONG");
}

// redis-cli prints a flat key/value array one element per line (SENTINEL master, CONFIG GET).
std::map<std::string, std::string> Pairs(const std::string& output) {
  std::vector<std::string> lines = absl::StrSplit(output, '\n', absl::SkipEmpty());
  std::map<std::string, std::string> pairs;
  for (size_t i = 0; i + 1 < lines.size(); i += 2) pairs[lines[i]] = lines[i + 1];
  return pairs;
}

int IntOr(const std::map<std::string, std::string>& pairs, const std::string& key, int fallback) {
  auto it = pairs.find(key);
  int value = 0;
  if (it == pairs.end() || !absl::SimpleAtoi(it->second, &value)) return fallback;
  return value;
}

}  // namespace

std::string RedisMissingReason() {
  std::string missing;
  for (const char* path : {kRedisServer, kRedisSentinel, kRedisCli}) {
    if (::access(path, X_OK) != 0) absl::StrAppend(&missing, missing.empty() ? "" : ", ", path);
  }
  if (missing.empty()) return "";
  return absl::StrCat("not installed: ", missing, " (apt-get install redis-server redis-sentinel redis-tools)");
}

bool PollUntil(const std::function<bool()>& condition, absl::Duration timeout, absl::Duration interval) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(interval);
  }
}

CommandResult RedisCli(int port, const std::vector<std::string>& args, absl::Duration timeout) {
  std::vector<std::string> argv = {kRedisCli, "-h", "127.0.0.1", "-p", absl::StrCat(port)};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, timeout);
}

// --- TempDir ---

absl::StatusOr<TempDir> TempDir::Create(const std::string& prefix) {
  std::string pattern = absl::StrCat("/tmp/", prefix, "-XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) return absl::InternalError(absl::StrCat("mkdtemp ", pattern));
  TempDir dir;
  dir.path_ = pattern;
  return dir;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    if (!path_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(path_, ignored);
    }
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

// --- RedisServer ---

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(const std::vector<std::string>& extra_args,
                                                                int replica_of) {
  std::unique_ptr<RedisServer> server(new RedisServer());
  absl::StatusOr<TempDir> dir = TempDir::Create("latchkey-redis");
  if (!dir.ok()) return dir.status();
  server->dir_ = *std::move(dir);
  server->port_ = FreeTcpPort();
  std::vector<std::string> argv = {kRedisServer,  "--port",       absl::StrCat(server->port_),
                                   "--bind",      "127.0.0.1",    "--save",
                                   "",            "--appendonly", "no",
                                   "--dir",       server->dir_.path(), "--daemonize",
                                   "no"};
  if (replica_of > 0) {
    argv.insert(argv.end(), {"--replicaof", "127.0.0.1", absl::StrCat(replica_of)});
  }
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  absl::StatusOr<ChildProcess> process = ChildProcess::Start(argv, server->dir_.path() + "/redis.log");
  if (!process.ok()) return process.status();
  server->process_ = *std::move(process);
  const int port = server->port_;
  if (!PollUntil([&] { return AnswersPing(port) || !server->process_.running(); }, kStartTimeout) ||
      !server->process_.running()) {
    return absl::UnavailableError(
        absl::StrCat("redis-server on ", port, " did not answer PING:\n", Tail(server->process_.ReadLog())));
  }
  return server;
}

RedisServer::~RedisServer() {
  // SIGKILL also ends a stopped process; the ChildProcess reaps it. Then the directory goes.
  process_.Stop(SIGKILL, absl::Seconds(5));
}

void RedisServer::Pause() {
  if (process_.pid() > 0) ::kill(process_.pid(), SIGSTOP);
  paused_ = true;
}

void RedisServer::Resume() {
  if (process_.pid() > 0) ::kill(process_.pid(), SIGCONT);
  paused_ = false;
}

void RedisServer::Kill() {
  process_.Stop(SIGKILL, absl::Seconds(5));
  paused_ = false;
}

CommandResult RedisServer::Cli(const std::vector<std::string>& args, absl::Duration timeout) const {
  return RedisCli(port_, args, timeout);
}

std::string RedisServer::Role() const {
  CommandResult r = Cli({"ROLE"}, absl::Seconds(1));
  if (r.exit_code != 0) return "";
  std::vector<std::string> lines = absl::StrSplit(r.output, '\n', absl::SkipEmpty());
  return lines.empty() ? "" : lines[0];
}

// --- RedisSentinel ---

absl::StatusOr<std::unique_ptr<RedisSentinel>> RedisSentinel::Start(const std::string& master_name,
                                                                    int primary_port) {
  std::unique_ptr<RedisSentinel> sentinel(new RedisSentinel());
  absl::StatusOr<TempDir> dir = TempDir::Create("latchkey-sentinel");
  if (!dir.ok()) return dir.status();
  sentinel->dir_ = *std::move(dir);
  sentinel->port_ = FreeTcpPort();
  const std::string conf_path = sentinel->dir_.path() + "/sentinel.conf";
  {
    std::ofstream conf(conf_path);
    conf << "port " << sentinel->port_ << "\n"
         << "bind 127.0.0.1\n"
         << "daemonize no\n"
         << "dir " << sentinel->dir_.path() << "\n"
         << "sentinel monitor " << master_name << " 127.0.0.1 " << primary_port << " 2\n"
         << "sentinel down-after-milliseconds " << master_name << " 1000\n"
         << "sentinel failover-timeout " << master_name << " 5000\n"
         << "sentinel parallel-syncs " << master_name << " 2\n";
    if (!conf) return absl::InternalError(absl::StrCat("cannot write ", conf_path));
  }
  absl::StatusOr<ChildProcess> process =
      ChildProcess::Start({kRedisSentinel, conf_path}, sentinel->dir_.path() + "/sentinel.log");
  if (!process.ok()) return process.status();
  sentinel->process_ = *std::move(process);
  const int port = sentinel->port_;
  if (!PollUntil([&] { return AnswersPing(port) || !sentinel->process_.running(); }, kStartTimeout) ||
      !sentinel->process_.running()) {
    return absl::UnavailableError(
        absl::StrCat("redis-sentinel on ", port, " did not answer PING:\n", Tail(sentinel->process_.ReadLog())));
  }
  return sentinel;
}

RedisSentinel::~RedisSentinel() { process_.Stop(SIGKILL, absl::Seconds(5)); }

CommandResult RedisSentinel::Cli(const std::vector<std::string>& args, absl::Duration timeout) const {
  return RedisCli(port_, args, timeout);
}

int RedisSentinel::MasterPort(const std::string& master_name) const {
  CommandResult r = Cli({"SENTINEL", "get-master-addr-by-name", master_name}, absl::Seconds(1));
  if (r.exit_code != 0) return 0;
  std::vector<std::string> lines = absl::StrSplit(r.output, '\n', absl::SkipEmpty());
  int port = 0;
  if (lines.size() != 2 || !absl::SimpleAtoi(lines[1], &port)) return 0;
  return port;
}

// --- RedisHa ---

absl::StatusOr<std::unique_ptr<RedisHa>> RedisHa::Start(const RedisHaOptions& options) {
  std::unique_ptr<RedisHa> ha(new RedisHa());
  ha->master_name_ = options.master_name;
  absl::StatusOr<std::unique_ptr<RedisServer>> primary = RedisServer::Start(options.server_args);
  if (!primary.ok()) return primary.status();
  ha->servers_.push_back(*std::move(primary));
  const int primary_port = ha->servers_[0]->port();
  for (int i = 0; i < options.replicas; ++i) {
    absl::StatusOr<std::unique_ptr<RedisServer>> replica = RedisServer::Start(options.server_args, primary_port);
    if (!replica.ok()) return replica.status();
    ha->servers_.push_back(*std::move(replica));
  }
  for (size_t i = 1; i < ha->servers_.size(); ++i) {
    RedisServer& replica = *ha->servers_[i];
    bool synced = PollUntil(
        [&] {
          CommandResult r = replica.Cli({"INFO", "replication"});
          return absl::StrContains(r.output, "master_link_status:up");
        },
        kStartTimeout);
    if (!synced) {
      return absl::UnavailableError(absl::StrCat("replica on ", replica.port(), " never synced:\n", ha->Logs()));
    }
  }
  for (int i = 0; i < options.sentinels; ++i) {
    absl::StatusOr<std::unique_ptr<RedisSentinel>> sentinel = RedisSentinel::Start(options.master_name, primary_port);
    if (!sentinel.ok()) return sentinel.status();
    ha->sentinels_.push_back(*std::move(sentinel));
  }
  // Sentinels learn replicas from the primary's INFO and each other from hello messages (every 2 s).
  for (const auto& sentinel : ha->sentinels_) {
    bool ready = PollUntil(
        [&] {
          CommandResult r = sentinel->Cli({"SENTINEL", "master", options.master_name});
          std::map<std::string, std::string> pairs = Pairs(r.output);
          return IntOr(pairs, "num-slaves", -1) == options.replicas &&
                 IntOr(pairs, "num-other-sentinels", -1) == options.sentinels - 1;
        },
        absl::Seconds(20), absl::Milliseconds(100));
    if (!ready) {
      return absl::UnavailableError(
          absl::StrCat("sentinel on ", sentinel->port(), " never saw every replica and sentinel:\n", ha->Logs()));
    }
  }
  return ha;
}

std::string RedisHa::Target() const {
  std::string target = "redis+sentinel://";
  for (size_t i = 0; i < sentinels_.size(); ++i) {
    absl::StrAppend(&target, i == 0 ? "" : ",", "127.0.0.1:", sentinels_[i]->port());
  }
  return absl::StrCat(target, "/", master_name_);
}

int RedisHa::MasterPort() const {
  std::map<int, int> votes;
  for (const auto& sentinel : sentinels_) ++votes[sentinel->MasterPort(master_name_)];
  for (const auto& [port, count] : votes) {
    if (port != 0 && count * 2 > static_cast<int>(sentinels_.size())) return port;
  }
  return 0;
}

int RedisHa::IndexOfPort(int port) const {
  for (size_t i = 0; i < servers_.size(); ++i) {
    if (servers_[i]->port() == port) return static_cast<int>(i);
  }
  return -1;
}

std::string RedisHa::Logs() const {
  std::string logs;
  for (const auto& server : servers_) {
    absl::StrAppend(&logs, "--- redis-server ", server->port(), "\n", Tail(server->Log()), "\n");
  }
  for (const auto& sentinel : sentinels_) {
    absl::StrAppend(&logs, "--- redis-sentinel ", sentinel->port(), "\n", Tail(sentinel->Log()), "\n");
  }
  return logs;
}

}  // namespace latchkey::testing
