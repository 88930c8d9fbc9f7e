#pragma once
// RedisClient: latchkey-control's connection to the shared store's Redis primary.
//
// One loop thread per client owns one hiredis async connection (hiredis_epoll.h drives it from epoll). Callers on
// any thread hand commands over through a mutex-protected queue and an eventfd, so commands from many RPC threads
// go out pipelined on one connection; replies come back in order.
//
// Finding the primary: with redis+sentinel:// the sentinels are asked in turn (SENTINEL get-master-addr-by-name)
// before every connection; with redis:// the one server is used. Either way the connection's first command is
// ROLE and the connection is used only if the answer is "master" (a replica, or an old primary that Sentinel has
// demoted, is refused and the sentinels are asked again); ROLE is asked again every role_check_interval.
//
// Deadlines are ours (hiredis 0.14 has no async timeouts): when the oldest pending command is older than
// command_timeout the connection is dropped, every pending command fails UNAVAILABLE ("redis: no reply within
// 500ms from HOST:PORT") and the client reconnects with backoff, asking the sentinels again.
//
// Status mapping of a command's outcome:
//   - OK with the reply, including an error reply (RedisReply::Type::kError) such as NOSCRIPT, ERR, WRONGTYPE or a
//     function's own error: the command reached the primary, the caller decides.
//   - UNAVAILABLE: not connected (fail fast, naming the reason), connection lost or timed out while pending, the
//     client stopped, or an error reply of class kUnavailable/kRediscover (LOADING, BUSY; READONLY, NOREPLICAS,
//     MASTERDOWN). READONLY/NOREPLICAS/MASTERDOWN also drop the connection and find the primary again, so a demoted
//     or isolated primary never keeps receiving writes.
//   - RESOURCE_EXHAUSTED: max_pending commands are already waiting.
//   - INVALID_ARGUMENT: empty argv. FAILED_PRECONDITION: Call() on the loop thread (use CallAsync there).
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/control/store/redis/redis_reply.h"

namespace latchkey::control::redis {

using RedisCallback = std::function<void(absl::StatusOr<RedisReply>)>;

// What on_connected gets: the new connection, before any queued command is sent on it. Valid only during the
// on_connected call.
class RedisSession {
 public:
  virtual ~RedisSession() = default;
  virtual const RedisAddress& address() const = 0;
  // Sends a command on this connection ahead of every caller's command (Redis runs them in order, so a FUNCTION
  // LOAD sent here is in place before the first FCALL). `done` runs on the loop thread; the command has the usual
  // deadline and does not count towards max_pending.
  virtual void Send(std::vector<std::string> argv, RedisCallback done) = 0;
};

// What happens to the client's connection, for counters (each is also logged).
enum class RedisConnectionEvent {
  kConnected,   // a connection passed the ROLE check
  kFailover,    // ... to another primary than the last one
  kTimeout,     // dropped: a command or the handshake got no reply within its deadline
  kNotPrimary,  // dropped: the node is not (or no longer) the primary
  kDropped,     // the connection ended for any reason (these above included)
};

struct RedisClientOptions {
  RedisTarget target;
  absl::Duration command_timeout = absl::Milliseconds(500);
  // For the TCP connect (and a sentinel's connect); ROLE then has command_timeout on top.
  absl::Duration connect_timeout = absl::Seconds(1);
  // Between connection attempts: doubling from min to max (with ±20 % jitter); back to min after a reply.
  absl::Duration reconnect_backoff_min = absl::Milliseconds(50);
  absl::Duration reconnect_backoff_max = absl::Seconds(1);
  // While connected, ROLE is sent this often (zero: never). A primary that Sentinel has turned into a replica keeps
  // its client connections and would go on answering reads; this finds it even when no write gets READONLY, and
  // notices a server that stopped answering on an idle connection (the probe has command_timeout).
  absl::Duration role_check_interval = absl::Seconds(1);
  // Commands queued or in flight at once; beyond that calls fail RESOURCE_EXHAUSTED.
  size_t max_pending = 10000;
  // Runs on the loop thread after each (re)connection has passed the ROLE check, before queued commands go out.
  // Must not block (no Call()); send through the session instead.
  std::function<void(RedisSession&)> on_connected;
  // Runs on the loop thread for each connection event; must not block.
  std::function<void(RedisConnectionEvent)> on_event;
};

class RedisClient {
 public:
  // Validates the options, starts the loop thread and waits for the first connection attempt to finish (bounded
  // by the timeouts). An unreachable Redis is not an error here: the client is returned disconnected and keeps
  // retrying. Errors: INVALID_ARGUMENT for bad options, INTERNAL if epoll/eventfd cannot be created.
  static absl::StatusOr<std::unique_ptr<RedisClient>> Start(RedisClientOptions options);

  // Stops the loop; every pending call fails UNAVAILABLE ("redis: client stopped").
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Any thread but the loop's: blocks until the reply or the deadline (command_timeout, plus a small guard).
  absl::StatusOr<RedisReply> Call(std::vector<std::string> argv);
  // Any thread. `done` runs exactly once: on the loop thread, or at once on the calling thread if the call fails
  // fast (not connected, queue full, stopped, empty argv).
  void CallAsync(std::vector<std::string> argv, RedisCallback done);

  // Connected to a server that answered ROLE "master".
  bool connected() const;
  // The primary this client is connected to; empty host when not connected.
  RedisAddress address() const;

  class Core;  // the loop and its state (redis_client.cc)

 private:
  explicit RedisClient(std::unique_ptr<Core> core);
  std::unique_ptr<Core> core_;
};

}  // namespace latchkey::control::redis
