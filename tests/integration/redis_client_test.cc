// RedisClient against real redis-server and redis-sentinel processes on loopback: pipelining, our own deadlines,
// the ROLE check, Sentinel failover after kill -9 and the stale-primary trap (docs: ha-redis.md §0, §4).
#include "services/control/store/redis/redis_client.h"

#include <atomic>
#include <cstdio>
#include <latch>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/support/redis_servers.h"

namespace latchkey::control::redis {
namespace {

using ::latchkey::testing::PollUntil;
using ::latchkey::testing::RedisHa;
using ::latchkey::testing::RedisHaOptions;
using ::latchkey::testing::RedisMissingReason;
using ::latchkey::testing::RedisServer;
using ::testing::HasSubstr;

#define SKIP_WITHOUT_REDIS()                                        \
  do {                                                              \
    std::string missing = RedisMissingReason();                     \
    if (!missing.empty()) GTEST_SKIP() << "redis: " << missing;     \
  } while (0)

RedisClientOptions Options(const std::string& target_text) {
  RedisClientOptions options;
  absl::StatusOr<RedisTarget> target = ParseRedisTarget(target_text);
  EXPECT_TRUE(target.ok()) << target.status();
  if (target.ok()) options.target = *target;
  options.command_timeout = absl::Milliseconds(500);
  options.connect_timeout = absl::Seconds(1);
  options.reconnect_backoff_min = absl::Milliseconds(50);
  options.reconnect_backoff_max = absl::Milliseconds(250);
  return options;
}

std::string Single(const RedisServer& server) { return absl::StrCat("redis://127.0.0.1:", server.port()); }

std::unique_ptr<RedisClient> StartClient(RedisClientOptions options) {
  absl::StatusOr<std::unique_ptr<RedisClient>> client = RedisClient::Start(std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

// The port the client's connection is on, from the server's own INFO (not from the client's bookkeeping).
int ConnectedPort(RedisClient& client) {
  absl::StatusOr<RedisReply> info = client.Call({"INFO", "server"});
  if (!info.ok() || info->type != RedisReply::Type::kString) return 0;
  for (absl::string_view line : absl::StrSplit(info->str, "\r\n")) {
    if (absl::ConsumePrefix(&line, "tcp_port:")) {
      int port = 0;
      return absl::SimpleAtoi(line, &port) ? port : 0;
    }
  }
  return 0;
}

std::string RoleThroughClient(RedisClient& client) {
  absl::StatusOr<RedisReply> role = client.Call({"ROLE"});
  if (!role.ok() || role->type != RedisReply::Type::kArray || role->elements.empty()) return "";
  return role->elements[0].str;
}

TEST(RedisClientTest, SetGetAndErrorReplies) {
  SKIP_WITHOUT_REDIS();
  auto server = RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<RedisClient> client = StartClient(Options(Single(**server)));
  ASSERT_NE(client, nullptr);
  EXPECT_TRUE(client->connected());
  EXPECT_EQ(client->address().port, (*server)->port());

  absl::StatusOr<RedisReply> set = client->Call({"SET", "greeting", std::string("he\0llo", 6)});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(*set, RedisReply::Status("OK"));
  absl::StatusOr<RedisReply> get = client->Call({"GET", "greeting"});
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(*get, RedisReply::String(std::string("he\0llo", 6)));
  absl::StatusOr<RedisReply> missing = client->Call({"GET", "nothing-here"});
  ASSERT_TRUE(missing.ok());
  EXPECT_TRUE(missing->is_nil());
  absl::StatusOr<RedisReply> incr = client->Call({"INCRBY", "counter", "41"});
  ASSERT_TRUE(incr.ok());
  EXPECT_EQ(*incr, RedisReply::Integer(41));

  // Error replies that are the caller's business come back OK, as error replies.
  absl::StatusOr<RedisReply> wrongtype = client->Call({"HGET", "greeting", "field"});
  ASSERT_TRUE(wrongtype.ok()) << wrongtype.status();
  EXPECT_TRUE(wrongtype->is_error());
  EXPECT_THAT(wrongtype->str, HasSubstr("WRONGTYPE"));
  absl::StatusOr<RedisReply> noscript = client->Call({"EVALSHA", std::string(40, 'a'), "0"});
  ASSERT_TRUE(noscript.ok()) << noscript.status();
  EXPECT_THAT(noscript->str, HasSubstr("NOSCRIPT"));

  EXPECT_EQ(client->Call({}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(client->connected());
}

TEST(RedisClientTest, PipelinesFromEightThreadsAndEveryReplyMatchesItsCommand) {
  SKIP_WITHOUT_REDIS();
  auto server = RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  std::unique_ptr<RedisClient> client = StartClient(Options(Single(**server)));
  ASSERT_NE(client, nullptr);

  constexpr int kThreads = 8;
  constexpr int kSync = 200;    // SET then GET, blocking: at most 8 in flight
  constexpr int kAsync = 1000;  // ECHO, fire and forget: thousands in flight at once (under max_pending)
  std::atomic<int> mismatches{0};
  std::atomic<int> failures{0};
  std::latch async_done(kThreads * kAsync);
  std::vector<std::thread> threads;
  const absl::Time start = absl::Now();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kAsync; ++i) {
        std::string word = absl::StrCat("echo-", t, "-", i);
        client->CallAsync({"ECHO", word}, [&, word](absl::StatusOr<RedisReply> reply) {
          if (!reply.ok()) {
            failures.fetch_add(1);
          } else if (*reply != RedisReply::String(word)) {
            mismatches.fetch_add(1);
          }
          async_done.count_down();
        });
      }
      for (int i = 0; i < kSync; ++i) {
        std::string key = absl::StrCat("k-", t, "-", i);
        std::string value = absl::StrCat("v-", t, "-", i, "-", i * 7);
        absl::StatusOr<RedisReply> set = client->Call({"SET", key, value});
        if (!set.ok()) {
          failures.fetch_add(1);
          continue;
        }
        if (*set != RedisReply::Status("OK")) mismatches.fetch_add(1);
        absl::StatusOr<RedisReply> get = client->Call({"GET", key});
        if (!get.ok()) {
          failures.fetch_add(1);
        } else if (*get != RedisReply::String(value)) {
          mismatches.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  async_done.wait();
  const absl::Duration took = absl::Now() - start;
  std::printf("pipelining: %d commands from %d threads in %s\n", kThreads * (kAsync + 2 * kSync), kThreads,
              absl::FormatDuration(took).c_str());
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(failures.load(), 0);
  absl::StatusOr<RedisReply> size = client->Call({"DBSIZE"});
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, RedisReply::Integer(kThreads * kSync));
}

TEST(RedisClientTest, PausedServerFailsWithinTheDeadlineAndTheClientRecovers) {
  SKIP_WITHOUT_REDIS();
  auto server = RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  RedisClientOptions options = Options(Single(**server));
  std::atomic<int> connections{0};
  options.on_connected = [&](RedisSession& session) {
    connections.fetch_add(1);
    session.Send({"SET", "hook", absl::StrCat(connections.load())}, [](absl::StatusOr<RedisReply>) {});
  };
  std::unique_ptr<RedisClient> client = StartClient(options);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Call({"SET", "before", "1"}).ok());
  EXPECT_EQ(connections.load(), 1);

  (*server)->Pause();
  const absl::Time start = absl::Now();
  absl::StatusOr<RedisReply> stuck = client->Call({"SET", "during", "1"});
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(stuck.status().code(), absl::StatusCode::kUnavailable) << stuck.status();
  EXPECT_THAT(std::string(stuck.status().message()), HasSubstr("no reply within 500ms"));
  EXPECT_LE(took, absl::Milliseconds(700));
  EXPECT_GE(took, absl::Milliseconds(450));
  std::printf("paused server: call failed after %s: %s\n", absl::FormatDuration(took).c_str(),
              stuck.status().ToString().c_str());

  // While it cannot reach the primary, calls fail fast and say why.
  const absl::Time fast_start = absl::Now();
  absl::StatusOr<RedisReply> fast = client->Call({"GET", "before"});
  EXPECT_EQ(fast.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(fast.status().message()), HasSubstr("not connected"));
  EXPECT_LE(absl::Now() - fast_start, absl::Milliseconds(100));
  EXPECT_FALSE(client->connected());

  (*server)->Resume();
  const absl::Time resumed = absl::Now();
  EXPECT_TRUE(PollUntil([&] { return client->Call({"GET", "before"}).ok(); }, absl::Seconds(10)));
  std::printf("paused server: recovered %s after SIGCONT\n", absl::FormatDuration(absl::Now() - resumed).c_str());
  EXPECT_TRUE(client->connected());
  EXPECT_GE(connections.load(), 2);  // the hook ran again on the new connection
  absl::StatusOr<RedisReply> hook = client->Call({"GET", "hook"});
  ASSERT_TRUE(hook.ok());
  EXPECT_EQ(*hook, RedisReply::String(absl::StrCat(connections.load())));
}

TEST(RedisClientTest, QueueIsBounded) {
  SKIP_WITHOUT_REDIS();
  auto server = RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  RedisClientOptions options = Options(Single(**server));
  options.max_pending = 100;
  std::unique_ptr<RedisClient> client = StartClient(options);
  ASSERT_NE(client, nullptr);
  (*server)->Pause();  // nothing gets answered: the pending count only grows
  std::atomic<int> exhausted{0};
  std::atomic<int> answered{0};
  std::latch done(150);
  for (int i = 0; i < 150; ++i) {
    client->CallAsync({"PING"}, [&](absl::StatusOr<RedisReply> reply) {
      if (reply.status().code() == absl::StatusCode::kResourceExhausted) exhausted.fetch_add(1);
      answered.fetch_add(1);
      done.count_down();
    });
  }
  done.wait();  // the 100 pending ones fail UNAVAILABLE at the deadline
  EXPECT_EQ(exhausted.load(), 50);
  (*server)->Resume();
}

TEST(RedisClientTest, ReplicaIsRefusedAndADemotedPrimaryIsDropped) {
  SKIP_WITHOUT_REDIS();
  auto primary = RedisServer::Start();
  ASSERT_TRUE(primary.ok()) << primary.status();
  auto replica = RedisServer::Start({}, (*primary)->port());
  ASSERT_TRUE(replica.ok()) << replica.status();

  // Straight to the replica: ROLE says "slave", the connection is refused.
  std::unique_ptr<RedisClient> to_replica = StartClient(Options(Single(**replica)));
  ASSERT_NE(to_replica, nullptr);
  EXPECT_FALSE(to_replica->connected());
  absl::StatusOr<RedisReply> refused = to_replica->Call({"SET", "k", "v"});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("not the master (ROLE slave)"));

  // A primary turned into a replica under a connected client: the write is refused (READONLY), the client drops
  // the connection and, asking again, refuses the node.
  std::unique_ptr<RedisClient> client = StartClient(Options(Single(**primary)));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Call({"SET", "k", "v"}).ok());
  // A client that only reads gets no READONLY: its periodic ROLE check finds the demotion.
  RedisClientOptions reader_options = Options(Single(**primary));
  reader_options.role_check_interval = absl::Milliseconds(200);
  std::unique_ptr<RedisClient> reader = StartClient(reader_options);
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(reader->Call({"GET", "k"}).ok());
  auto other = RedisServer::Start();
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_EQ((*primary)->Cli({"REPLICAOF", "127.0.0.1", absl::StrCat((*other)->port())}).exit_code, 0);
  absl::StatusOr<RedisReply> readonly = client->Call({"SET", "k", "v2"});
  EXPECT_EQ(readonly.status().code(), absl::StatusCode::kUnavailable) << readonly.status();
  EXPECT_THAT(std::string(readonly.status().message()), HasSubstr("READONLY"));
  EXPECT_TRUE(PollUntil([&] { return !client->connected(); }, absl::Seconds(2)));
  absl::StatusOr<RedisReply> later = client->Call({"SET", "k", "v3"});
  EXPECT_EQ(later.status().code(), absl::StatusCode::kUnavailable);

  EXPECT_TRUE(PollUntil([&] { return !reader->connected(); }, absl::Seconds(2)));
  absl::StatusOr<RedisReply> read = reader->Call({"GET", "k"});
  EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(read.status().message()), HasSubstr("ROLE slave"));
}

// Writes `key-N` every few ms through the client; records what was acknowledged and when the writes failed.
struct WriteLog {
  int next = 0;
  std::vector<std::string> acked;
  std::map<absl::StatusCode, int> failures;
  std::string last_failure;
};

absl::Status WriteOnce(RedisClient& client, const std::string& prefix, WriteLog& log) {
  std::string key = absl::StrCat(prefix, "-", log.next++);
  absl::StatusOr<RedisReply> reply = client.Call({"SET", key, "1"});
  if (reply.ok() && *reply == RedisReply::Status("OK")) {
    log.acked.push_back(key);
    return absl::OkStatus();
  }
  absl::Status status = reply.ok() ? absl::InternalError(reply->DebugString()) : reply.status();
  ++log.failures[status.code()];
  log.last_failure = status.ToString();
  return status;
}

int MissingOn(RedisServer& server, const std::vector<std::string>& keys) {
  int missing = 0;
  for (size_t i = 0; i < keys.size(); i += 200) {
    std::vector<std::string> args = {"EXISTS"};
    for (size_t j = i; j < keys.size() && j < i + 200; ++j) args.push_back(keys[j]);
    latchkey::testing::CommandResult r = server.Cli(args);
    int present = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(r.output), &present)) return -1;
    missing += static_cast<int>(args.size() - 1) - present;
  }
  return missing;
}

TEST(RedisClientSentinelTest, KillNinePrimaryFailsOverToTheReplica) {
  SKIP_WITHOUT_REDIS();
  RedisHaOptions ha_options;
  ha_options.replicas = 1;
  ha_options.sentinels = 3;
  auto ha = RedisHa::Start(ha_options);
  ASSERT_TRUE(ha.ok()) << ha.status();
  std::unique_ptr<RedisClient> client = StartClient(Options((*ha)->Target()));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->connected());
  const int old_port = (*ha)->server(0).port();
  EXPECT_EQ(client->address().port, old_port);
  EXPECT_EQ(ConnectedPort(*client), old_port);

  WriteLog log;
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(WriteOnce(*client, "kill", log).ok()) << log.last_failure;

  (*ha)->server(0).Kill();
  const absl::Time killed = absl::Now();
  absl::Time recovered = absl::InfinitePast();
  while (absl::Now() - killed < absl::Seconds(15)) {
    const int failures_before = log.failures[absl::StatusCode::kUnavailable];
    if (WriteOnce(*client, "kill", log).ok() && failures_before > 0) {
      recovered = absl::Now();
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_NE(recovered, absl::InfinitePast()) << "no write succeeded within 15 s of kill -9; last: "
                                             << log.last_failure << "\n"
                                             << (*ha)->Logs();
  const absl::Duration gap = recovered - killed;
  std::printf("kill -9 primary: writes refused for %s (%d UNAVAILABLE), then accepted by the promoted replica\n",
              absl::FormatDuration(gap).c_str(), log.failures[absl::StatusCode::kUnavailable]);
  EXPECT_LT(gap, absl::Seconds(15));
  // Every failure was UNAVAILABLE: never an ambiguous "OK".
  EXPECT_EQ(log.failures.size(), 1u) << log.last_failure;

  // The sentinel that led the failover knows first (the client may have asked it); the others learn
  // from its hello messages within a second or two.
  int new_port = 0;
  for (int i = 0; i < 100 && new_port != (*ha)->server(1).port(); ++i) {
    new_port = (*ha)->MasterPort();
    if (new_port != (*ha)->server(1).port()) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(new_port, (*ha)->server(1).port());
  EXPECT_EQ(client->address().port, new_port);
  EXPECT_EQ(ConnectedPort(*client), new_port);
  EXPECT_EQ(RoleThroughClient(*client), "master");
  const int lost = MissingOn((*ha)->server(1), log.acked);
  std::printf("kill -9 primary: %zu acknowledged writes, %d missing on the new primary\n", log.acked.size(), lost);
}

TEST(RedisClientSentinelTest, ResumedOldPrimaryIsNeverWrittenTo) {
  SKIP_WITHOUT_REDIS();
  RedisHaOptions ha_options;
  ha_options.replicas = 2;  // min-replicas-to-write 1 needs a replica left after the failover
  ha_options.sentinels = 3;
  ha_options.server_args = {"--min-replicas-to-write", "1", "--min-replicas-max-lag", "2"};
  auto ha = RedisHa::Start(ha_options);
  ASSERT_TRUE(ha.ok()) << ha.status();
  std::unique_ptr<RedisClient> client = StartClient(Options((*ha)->Target()));
  ASSERT_NE(client, nullptr);
  RedisServer& old_primary = (*ha)->server(0);
  ASSERT_EQ(ConnectedPort(*client), old_primary.port());

  WriteLog log;
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(WriteOnce(*client, "stale", log).ok()) << log.last_failure;

  old_primary.Pause();
  const absl::Time paused = absl::Now();
  // The sentinels promote a replica; the client follows them there.
  bool moved = PollUntil(
      [&] {
        (void)WriteOnce(*client, "stale", log);
        const int master = (*ha)->MasterPort();
        return master != 0 && master != old_primary.port() && client->connected() &&
               client->address().port == master;
      },
      absl::Seconds(15), absl::Milliseconds(10));
  ASSERT_TRUE(moved) << "last: " << log.last_failure << "\n" << (*ha)->Logs();
  std::printf("paused primary: client on the promoted replica after %s\n",
              absl::FormatDuration(absl::Now() - paused).c_str());

  // The old primary comes back believing it is the master. For the next 3 s every acknowledged write must be on
  // the current master, and the client must be connected to it, never to the old one.
  old_primary.Resume();
  const size_t acked_before_resume = log.acked.size();
  const absl::Time resumed = absl::Now();
  int checks = 0;
  while (absl::Now() - resumed < absl::Seconds(3)) {
    for (int i = 0; i < 20; ++i) (void)WriteOnce(*client, "stale", log);
    const int master = (*ha)->MasterPort();
    const int connected_port = ConnectedPort(*client);
    if (connected_port != 0) {
      ++checks;
      EXPECT_NE(connected_port, old_primary.port());
      EXPECT_EQ(connected_port, master);
      EXPECT_EQ(RoleThroughClient(*client), "master");
    }
  }
  EXPECT_GT(checks, 0);
  EXPECT_GT(log.acked.size(), acked_before_resume);
  // A direct write to the resumed old primary is refused by min-replicas-to-write (or it is a replica by now).
  latchkey::testing::CommandResult direct = old_primary.Cli({"SET", "direct", "1"});
  EXPECT_TRUE(absl::StrContains(direct.output, "NOREPLICAS") || absl::StrContains(direct.output, "READONLY"))
      << direct.output;

  const int master = (*ha)->MasterPort();
  const int index = (*ha)->IndexOfPort(master);
  ASSERT_GE(index, 1);
  const int lost = MissingOn((*ha)->server(static_cast<size_t>(index)), log.acked);
  std::printf("paused primary: %zu acknowledged writes (%zu after resume), %d missing on the current master\n",
              log.acked.size(), log.acked.size() - acked_before_resume, lost);
  EXPECT_EQ(lost, 0);
}

}  // namespace
}  // namespace latchkey::control::redis
