#include "services/control/store/redis/redis_client.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>

#include <optional>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <random>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/log/log.h"
#include "services/control/store/redis/hiredis_epoll.h"
#include "services/control/store/redis/redis_reply_internal.h"

namespace latchkey::control::redis {

using Clock = std::chrono::steady_clock;

namespace {

constexpr uint64_t kWakeToken = 0;
// Call() waits this long past command_timeout for the loop to answer before giving up on its own.
constexpr absl::Duration kCallGuard = absl::Seconds(1);

Clock::duration ToClock(absl::Duration d) { return std::chrono::nanoseconds(absl::ToInt64Nanoseconds(d)); }


absl::Status Unavailable(absl::string_view reason) { return absl::UnavailableError(absl::StrCat("redis: ", reason)); }

// argv as hiredis wants it; the strings must outlive the call (hiredis copies them into its buffer).
struct Argv {
  explicit Argv(const std::vector<std::string>& args) {
    pointers.reserve(args.size());
    lengths.reserve(args.size());
    for (const std::string& a : args) {
      pointers.push_back(a.data());
      lengths.push_back(a.size());
    }
  }
  std::vector<const char*> pointers;
  std::vector<size_t> lengths;
};

}  // namespace

class RedisClient::Core {
 public:
  explicit Core(RedisClientOptions options) : options_(std::move(options)), sentinels_(options_.target.addresses) {
    std::random_device seed;
    rng_.seed(seed());
  }

  ~Core() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    Wake();
    if (thread_.joinable()) thread_.join();
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }

  absl::Status Init() {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) return absl::InternalError(absl::StrCat("redis: epoll_create1: ", std::strerror(errno)));
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) return absl::InternalError(absl::StrCat("redis: eventfd: ", std::strerror(errno)));
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = kWakeToken;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event) != 0) {
      return absl::InternalError(absl::StrCat("redis: epoll_ctl: ", std::strerror(errno)));
    }
    thread_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }

  void WaitForFirstAttempt() {
    const int rounds = options_.target.kind == RedisTarget::Kind::kSentinel
                           ? static_cast<int>(options_.target.addresses.size()) + 1
                           : 1;
    absl::Duration bound = (options_.connect_timeout + options_.command_timeout) * rounds + kCallGuard;
    first_attempt_.WaitForNotificationWithTimeout(bound);
  }

  // --- any thread ---

  void CallAsync(std::vector<std::string> argv, RedisCallback done) {
    if (argv.empty()) {
      done(absl::InvalidArgumentError("redis: empty command"));
      return;
    }
    absl::Status refused;
    bool wake = false;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) {
        refused = Unavailable("client stopped");
      } else if (!ready_) {
        refused = Unavailable(absl::StrCat("not connected: ", unavailable_reason_));
      } else if (pending_ >= options_.max_pending) {
        refused = absl::ResourceExhaustedError(
            absl::StrCat("redis: ", pending_, " commands already pending (max_pending ", options_.max_pending, ")"));
      } else {
        ++pending_;
        wake = queue_.empty();
        Command command;
        command.argv = std::move(argv);
        command.done = std::move(done);
        command.deadline = Clock::now() + ToClock(options_.command_timeout);
        queue_.push_back(std::move(command));
      }
    }
    if (!refused.ok()) {
      done(std::move(refused));
      return;
    }
    if (wake) Wake();
  }

  absl::StatusOr<RedisReply> Call(std::vector<std::string> argv) {
    if (std::this_thread::get_id() == thread_.get_id()) {
      return absl::FailedPreconditionError("redis: Call() on the client's loop thread would deadlock; use CallAsync");
    }
    struct Waiter {
      absl::Mutex mu;
      bool done ABSL_GUARDED_BY(mu) = false;
      absl::StatusOr<RedisReply> result ABSL_GUARDED_BY(mu);
    };
    auto waiter = std::make_shared<Waiter>();
    CallAsync(std::move(argv), [waiter](absl::StatusOr<RedisReply> result) {
      absl::MutexLock lock(&waiter->mu);
      waiter->result = std::move(result);
      waiter->done = true;
    });
    absl::MutexLock lock(&waiter->mu);
    if (!waiter->mu.AwaitWithTimeout(absl::Condition(&waiter->done), options_.command_timeout + kCallGuard)) {
      return Unavailable(absl::StrCat("no answer from the client loop within ",
                                      absl::FormatDuration(options_.command_timeout + kCallGuard)));
    }
    return std::move(waiter->result);
  }

  bool connected() const { return connected_.load(std::memory_order_acquire); }

  RedisAddress address() const {
    absl::MutexLock lock(&mu_);
    return address_;
  }

 private:
  struct Command {
    std::vector<std::string> argv;
    RedisCallback done;
    Clock::time_point deadline;
  };

  // A command written to the connection, waiting for its reply (hiredis answers in order).
  struct Pending {
    RedisCallback done;
    Clock::time_point deadline;
    bool counted = false;  // a caller's command (counts towards max_pending)
    bool role = false;     // the handshake's ROLE: its deadline covers the TCP connect too
  };

  enum class State { kIdle, kConnecting, kReady };

  class Session : public RedisSession {
   public:
    explicit Session(Core* core) : core_(core) {}
    const RedisAddress& address() const override { return core_->current_; }
    void Send(std::vector<std::string> argv, RedisCallback done) override {
      core_->SendOnConnection(argv, std::move(done), Clock::now() + ToClock(core_->options_.command_timeout),
                              /*counted=*/false, /*role=*/false);
    }

   private:
    Core* core_;
  };

  void Wake() {
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd_, &one, sizeof(one));
    (void)n;  // EAGAIN: the counter is already non-zero, the loop wakes anyway
  }

  // --- the loop thread from here on ---

  void Run() {
    // hiredis writes with write(2): a peer that is gone would raise SIGPIPE and kill the process. Blocked here, the
    // signal (directed at this thread) stays pending on this thread and write returns EPIPE, which hiredis handles.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    reconnect_at_ = Clock::now();
    epoll_event events[16];
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) break;
      }
      if (state_ == State::kIdle && Clock::now() >= reconnect_at_) Connect();
      int n = ::epoll_wait(epoll_fd_, events, 16, WaitMillis());
      for (int i = 0; i < n; ++i) {
        if (events[i].data.u64 == kWakeToken) {
          uint64_t count = 0;
          ssize_t r = ::read(wake_fd_, &count, sizeof(count));
          (void)r;
        } else if (ac_ != nullptr && events[i].data.u64 == generation_) {
          redisAsyncContext* ac = ac_;
          uint64_t generation = generation_;
          DispatchHiredisEvents(ac, events[i].events,
                                [this, generation] { return ac_ != nullptr && generation_ == generation; });
          AfterHiredis();
        }
      }
      DrainQueue();
      CheckDeadlines();
      MaybeCheckRole();
    }
    exiting_ = true;
    Drop("client stopped");
    AfterHiredis();
    FailQueue(Unavailable("client stopped"));
    NotifyFirstAttempt();
  }

  int WaitMillis() const {
    Clock::time_point wake = Clock::time_point::max();
    if (!inflight_.empty()) wake = std::min(wake, inflight_.front().deadline);
    if (state_ == State::kIdle) wake = std::min(wake, reconnect_at_);
    if (state_ == State::kReady && RoleChecks() && !role_check_pending_) wake = std::min(wake, next_role_check_);
    if (wake == Clock::time_point::max()) return -1;
    Clock::duration left = wake - Clock::now();
    if (left <= Clock::duration::zero()) return 0;
    // Round up so that the loop does not spin on a deadline less than 1 ms away.
    return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
  }

  void Connect() {
    state_ = State::kConnecting;
    RedisAddress address;
    if (options_.target.kind == RedisTarget::Kind::kSingle) {
      address = options_.target.addresses.front();
    } else {
      absl::StatusOr<RedisAddress> primary = AskSentinels();
      if (!primary.ok()) {
        ConnectionGone(std::string(primary.status().message()));
        return;
      }
      address = *std::move(primary);
    }
    redisAsyncContext* ac = redisAsyncConnect(address.host.c_str(), address.port);
    if (ac == nullptr) {
      ConnectionGone(absl::StrCat(address.ToString(), ": cannot allocate a connection"));
      return;
    }
    if (ac->err != 0) {
      std::string reason = absl::StrCat(address.ToString(), ": ", ac->errstr);
      redisAsyncFree(ac);
      ConnectionGone(reason);
      return;
    }
    current_ = address;
    drop_reason_.clear();
    ac_ = ac;
    ac->data = this;
    ++generation_;
    AttachHiredisToEpoll(ac, epoll_fd_, generation_, [this] { ac_ = nullptr; });
    redisAsyncSetConnectCallback(ac, &Core::OnConnect);
    redisAsyncSetDisconnectCallback(ac, &Core::OnDisconnect);
    connect_started_ = Clock::now();
    SendOnConnection({"ROLE"}, [this](absl::StatusOr<RedisReply> reply) { OnRole(std::move(reply)); },
                     connect_started_ + ToClock(options_.connect_timeout + options_.command_timeout),
                     /*counted=*/false, /*role=*/true);
  }

  // One short synchronous connection per sentinel, in order; the one that answers moves to the front.
  absl::StatusOr<RedisAddress> AskSentinels() {
    std::vector<std::string> errors;
    for (size_t i = 0; i < sentinels_.size(); ++i) {
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return Unavailable("client stopped");
      }
      const RedisAddress sentinel = sentinels_[i];
      absl::StatusOr<RedisAddress> primary = AskSentinel(sentinel);
      if (primary.ok()) {
        std::rotate(sentinels_.begin(), sentinels_.begin() + static_cast<std::ptrdiff_t>(i),
                    sentinels_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
        return primary;
      }
      errors.push_back(std::string(primary.status().message()));
    }
    return absl::UnavailableError(absl::StrCat("no sentinel named the master \"", options_.target.master_name,
                                               "\" (", absl::StrJoin(errors, "; "), ")"));
  }

  absl::StatusOr<RedisAddress> AskSentinel(const RedisAddress& sentinel) {
    redisContext* c = redisConnectWithTimeout(sentinel.host.c_str(), sentinel.port, absl::ToTimeval(options_.connect_timeout));
    if (c == nullptr) return absl::UnavailableError(absl::StrCat("sentinel ", sentinel.ToString(), ": out of memory"));
    absl::StatusOr<RedisAddress> result;
    if (c->err != 0) {
      result = absl::UnavailableError(absl::StrCat("sentinel ", sentinel.ToString(), ": ", c->errstr));
    } else {
      redisSetTimeout(c, absl::ToTimeval(options_.command_timeout));
      std::vector<std::string> args = {"SENTINEL", "get-master-addr-by-name", options_.target.master_name};
      Argv argv(args);
      auto* raw = static_cast<redisReply*>(
          redisCommandArgv(c, static_cast<int>(args.size()), argv.pointers.data(), argv.lengths.data()));
      if (raw == nullptr) {
        result = absl::UnavailableError(absl::StrCat("sentinel ", sentinel.ToString(), ": ", c->errstr));
      } else {
        RedisReply reply = ConvertReply(raw);
        freeReplyObject(raw);
        int port = 0;
        if (reply.type == RedisReply::Type::kArray && reply.elements.size() == 2 &&
            reply.elements[0].type == RedisReply::Type::kString &&
            reply.elements[1].type == RedisReply::Type::kString && absl::SimpleAtoi(reply.elements[1].str, &port) &&
            port > 0 && port < 65536) {
          RedisAddress primary;
          primary.host = reply.elements[0].str;
          primary.port = port;
          result = primary;
        } else if (reply.is_nil()) {
          result = absl::UnavailableError(absl::StrCat("sentinel ", sentinel.ToString(), ": no master named \"",
                                                       options_.target.master_name, "\""));
        } else {
          result = absl::UnavailableError(
              absl::StrCat("sentinel ", sentinel.ToString(), ": unexpected answer ", reply.DebugString()));
        }
      }
    }
    redisFree(c);
    return result;
  }

  void OnRole(absl::StatusOr<RedisReply> reply) {
    if (!reply.ok()) return;  // the connection is going away; ConnectionGone reports why
    if (reply->type == RedisReply::Type::kArray && !reply->elements.empty() &&
        reply->elements[0].str == "master") {
      Ready();
      return;
    }
    std::string role = reply->type == RedisReply::Type::kArray && !reply->elements.empty()
                           ? reply->elements[0].str
                           : reply->DebugString();
    Drop(absl::StrCat(current_.ToString(), " is not the master (ROLE ", role, ")"), RedisConnectionEvent::kNotPrimary);
  }

  bool RoleChecks() const { return options_.role_check_interval > absl::ZeroDuration(); }

  // Asks ROLE on the live connection now and then; anything but "master" drops it.
  void MaybeCheckRole() {
    if (state_ != State::kReady || ac_ == nullptr || !drop_reason_.empty() || !RoleChecks() ||
        role_check_pending_ || Clock::now() < next_role_check_) {
      return;
    }
    role_check_pending_ = true;
    const uint64_t generation = generation_;
    SendOnConnection(
        {"ROLE"},
        [this, generation](absl::StatusOr<RedisReply> reply) {
          if (generation != generation_) return;  // a late answer about an older connection
          role_check_pending_ = false;
          next_role_check_ = Clock::now() + ToClock(options_.role_check_interval);
          if (!reply.ok()) return;  // the connection is going away anyway
          if (reply->type == RedisReply::Type::kArray && !reply->elements.empty() &&
              reply->elements[0].str == "master") {
            return;
          }
          const std::string role = reply->type == RedisReply::Type::kArray && !reply->elements.empty()
                                       ? reply->elements[0].str
                                       : reply->DebugString();
          Drop(absl::StrCat(current_.ToString(), " is no longer the master (ROLE ", role, ")"),
               RedisConnectionEvent::kNotPrimary);
        },
        Clock::now() + ToClock(options_.command_timeout), /*counted=*/false, /*role=*/false);
    AfterHiredis();
  }

  void Ready() {
    state_ = State::kReady;
    role_check_pending_ = false;
    next_role_check_ = Clock::now() + ToClock(options_.role_check_interval);
    const bool failover = last_master_.port != 0 && last_master_ != current_;
    const RedisAddress previous = last_master_;
    last_master_ = current_;
    connected_.store(true, std::memory_order_release);
    {
      absl::MutexLock lock(&mu_);
      ready_ = true;
      address_ = current_;
      unavailable_reason_.clear();
    }
    const double connect_ms = std::chrono::duration<double, std::milli>(Clock::now() - connect_started_).count();
    log::LogInfo("redis connected")
        .Kv("target", options_.target.ToString())
        .Kv("address", current_.ToString())
        .Kv("role", "master")
        .Kv("attempts", failures_ + 1)
        .Kv("connect_ms", connect_ms);
    Emit(RedisConnectionEvent::kConnected);
    if (failover) {
      log::LogWarning("redis failover").Kv("from", previous.ToString()).Kv("to", current_.ToString());
      Emit(RedisConnectionEvent::kFailover);
    }
    last_logged_failure_.clear();
    NotifyFirstAttempt();
    if (options_.on_connected) {
      Session session(this);
      options_.on_connected(session);
    }
  }

  // Writes one command on the current connection (the loop thread only).
  void SendOnConnection(const std::vector<std::string>& args, RedisCallback done, Clock::time_point deadline,
                        bool counted, bool role) {
    if (ac_ == nullptr || !drop_reason_.empty()) {
      Finish(counted, done, Unavailable(absl::StrCat("not connected: ", drop_reason_.empty() ? "no connection" : drop_reason_)));
      return;
    }
    Argv argv(args);
    if (redisAsyncCommandArgv(ac_, &Core::OnReply, this, static_cast<int>(args.size()), argv.pointers.data(),
                              argv.lengths.data()) != REDIS_OK) {
      Finish(counted, done, Unavailable(absl::StrCat(current_.ToString(), ": connection closing")));
      return;
    }
    Pending pending;
    pending.done = std::move(done);
    pending.deadline = deadline;
    pending.counted = counted;
    pending.role = role;
    inflight_.push_back(std::move(pending));
  }

  void Finish(bool counted, const RedisCallback& done, absl::StatusOr<RedisReply> result) {
    if (counted) {
      absl::MutexLock lock(&mu_);
      --pending_;
    }
    done(std::move(result));
  }

  // hiredis' own reasons for a failed connect or a lost connection (ours, if any, take precedence).
  static void OnConnect(const redisAsyncContext* ac, int status) {
    if (status != REDIS_OK) static_cast<Core*>(ac->data)->NoteHiredisError(ac);
  }
  static void OnDisconnect(const redisAsyncContext* ac, int status) {
    if (status != REDIS_OK) static_cast<Core*>(ac->data)->NoteHiredisError(ac);
  }
  void NoteHiredisError(const redisAsyncContext* ac) {
    if (drop_reason_.empty() && ac->err != 0) drop_reason_ = absl::StrCat(current_.ToString(), ": ", ac->errstr);
  }

  static void OnReply(redisAsyncContext* ac, void* raw, void* privdata) {
    static_cast<Core*>(privdata)->HandleReply(ac, static_cast<redisReply*>(raw));
  }

  void HandleReply(redisAsyncContext* ac, redisReply* raw) {
    if (inflight_.empty()) return;  // cannot happen: hiredis calls back once per command, in order
    Pending pending = std::move(inflight_.front());
    inflight_.pop_front();
    if (raw == nullptr) {
      // The connection is being freed: by us (drop_reason_) or by hiredis after an error.
      if (drop_reason_.empty()) {
        drop_reason_ = ac->err != 0 ? absl::StrCat(current_.ToString(), ": ", ac->errstr)
                                    : absl::StrCat(current_.ToString(), ": connection closed");
      }
      ++unreplied_;
      Finish(pending.counted, pending.done, Unavailable(drop_reason_));
      return;
    }
    RedisReply reply = ConvertReply(raw);
    switch (ClassifyError(reply)) {
      case RedisErrorClass::kRediscover: {
        std::string reason = absl::StrCat(current_.ToString(), " answered ", reply.str);
        Finish(pending.counted, pending.done, Unavailable(reason));
        Drop(reason, RedisConnectionEvent::kNotPrimary);
        return;
      }
      case RedisErrorClass::kUnavailable:
        Finish(pending.counted, pending.done, Unavailable(absl::StrCat(current_.ToString(), " answered ", reply.str)));
        return;
      case RedisErrorClass::kNotAnError:
      case RedisErrorClass::kReply:
        if (pending.counted) failures_ = 0;  // the primary works: the next outage starts from the shortest backoff
        Finish(pending.counted, pending.done, std::move(reply));
        return;
    }
  }

  void Emit(RedisConnectionEvent event) {
    if (options_.on_event) options_.on_event(event);
  }

  // Marks the connection for dropping; the loop frees it once hiredis has returned (never inside a callback).
  void Drop(absl::string_view reason, std::optional<RedisConnectionEvent> why = std::nullopt) {
    if (drop_reason_.empty()) {
      drop_reason_ = std::string(reason);
      if (why) Emit(*why);
    }
    if (state_ == State::kReady) {
      // Stop taking calls at once, not only after the free.
      connected_.store(false, std::memory_order_release);
      absl::MutexLock lock(&mu_);
      ready_ = false;
      unavailable_reason_ = drop_reason_;
    }
  }

  // After every entry into hiredis: free a connection we marked, and account for one that is gone.
  void AfterHiredis() {
    if (ac_ != nullptr && !drop_reason_.empty()) {
      redisAsyncContext* ac = ac_;
      redisAsyncFree(ac);  // fails every pending command with drop_reason_ and runs the cleanup hook
      ac_ = nullptr;
    }
    if (ac_ == nullptr && state_ != State::kIdle) {
      ConnectionGone(drop_reason_.empty() ? absl::StrCat(current_.ToString(), ": connection closed") : drop_reason_);
    }
  }

  void CheckDeadlines() {
    if (inflight_.empty() || ac_ == nullptr) return;
    const Pending& oldest = inflight_.front();
    if (Clock::now() < oldest.deadline) return;
    if (oldest.role) {
      Drop(absl::StrCat("no connection and ROLE reply from ", current_.ToString(), " within ",
                        absl::FormatDuration(options_.connect_timeout + options_.command_timeout)),
           RedisConnectionEvent::kTimeout);
    } else {
      Drop(absl::StrCat("no reply within ", absl::FormatDuration(options_.command_timeout), " from ",
                        current_.ToString()),
           RedisConnectionEvent::kTimeout);
    }
    AfterHiredis();
  }

  void DrainQueue() {
    std::deque<Command> commands;
    {
      absl::MutexLock lock(&mu_);
      commands.swap(queue_);
    }
    for (Command& command : commands) {
      if (state_ != State::kReady) {
        Finish(true, command.done,
               Unavailable(absl::StrCat("not connected: ", drop_reason_.empty() ? "connection lost" : drop_reason_)));
        continue;
      }
      SendOnConnection(command.argv, std::move(command.done), command.deadline, /*counted=*/true, /*role=*/false);
    }
  }

  void FailQueue(const absl::Status& status) {
    std::deque<Command> commands;
    {
      absl::MutexLock lock(&mu_);
      commands.swap(queue_);
    }
    for (Command& command : commands) Finish(true, command.done, status);
  }

  // The connection (or the attempt) is over: fail what waits, back off, log.
  void ConnectionGone(const std::string& reason) {
    const bool was_ready = state_ == State::kReady;
    state_ = State::kIdle;
    connected_.store(false, std::memory_order_release);
    {
      absl::MutexLock lock(&mu_);
      ready_ = false;
      address_ = RedisAddress();
      unavailable_reason_ = reason;
    }
    // hiredis has failed every command it had; anything left here never reached it.
    unreplied_ += inflight_.size();
    const size_t unreplied = unreplied_;
    unreplied_ = 0;
    while (!inflight_.empty()) {
      Pending pending = std::move(inflight_.front());
      inflight_.pop_front();
      Finish(pending.counted, pending.done, Unavailable(reason));
    }
    FailQueue(Unavailable(absl::StrCat("not connected: ", reason)));
    ++failures_;
    const absl::Duration backoff = Backoff();
    reconnect_at_ = Clock::now() + ToClock(backoff);
    if (was_ready) {
      if (!exiting_) Emit(RedisConnectionEvent::kDropped);
      log::Line(exiting_ ? log::Level::kInfo : log::Level::kWarning, "redis disconnected")
          .Kv("target", options_.target.ToString())
          .Kv("address", current_.ToString())
          .Kv("reason", reason)
          .Kv("unreplied", unreplied)
          .Kv("retry_ms", absl::ToInt64Milliseconds(backoff));
    } else if (reason != last_logged_failure_) {
      // One line per distinct failure, not one per retry.
      log::LogWarning("redis connect failed")
          .Kv("target", options_.target.ToString())
          .Kv("reason", reason)
          .Kv("attempt", failures_)
          .Kv("retry_ms", absl::ToInt64Milliseconds(backoff));
      last_logged_failure_ = reason;
    }
    drop_reason_.clear();
    NotifyFirstAttempt();
  }

  void NotifyFirstAttempt() {
    if (!first_attempt_.HasBeenNotified()) first_attempt_.Notify();
  }

  absl::Duration Backoff() {
    absl::Duration backoff = options_.reconnect_backoff_min;
    for (int i = 1; i < failures_ && backoff < options_.reconnect_backoff_max; ++i) backoff *= 2;
    backoff = std::min(backoff, options_.reconnect_backoff_max);
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    return backoff * jitter(rng_);
  }

  const RedisClientOptions options_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
  absl::Notification first_attempt_;
  std::atomic<bool> connected_{false};

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;  // taking calls
  std::string unavailable_reason_ ABSL_GUARDED_BY(mu_) = "connecting";
  RedisAddress address_ ABSL_GUARDED_BY(mu_);
  size_t pending_ ABSL_GUARDED_BY(mu_) = 0;  // callers' commands queued or in flight
  std::deque<Command> queue_ ABSL_GUARDED_BY(mu_);

  // Loop thread only.
  std::vector<RedisAddress> sentinels_;
  redisAsyncContext* ac_ = nullptr;
  uint64_t generation_ = 0;  // epoll token of the current connection's fd (0 is the eventfd)
  State state_ = State::kIdle;
  RedisAddress current_;      // the address of ac_
  RedisAddress last_master_;  // the last address that passed ROLE
  std::deque<Pending> inflight_;
  std::string drop_reason_;  // non-empty: the connection is being dropped for this reason
  std::string last_logged_failure_;
  int failures_ = 0;
  size_t unreplied_ = 0;  // commands failed by the connection being closed, for its log line
  bool exiting_ = false;  // the client is being destroyed
  bool role_check_pending_ = false;
  Clock::time_point next_role_check_;
  Clock::time_point reconnect_at_;
  Clock::time_point connect_started_;
  std::minstd_rand rng_;
};

// --- RedisClient ---

RedisClient::RedisClient(std::unique_ptr<Core> core) : core_(std::move(core)) {}

RedisClient::~RedisClient() = default;

absl::StatusOr<std::unique_ptr<RedisClient>> RedisClient::Start(RedisClientOptions options) {
  const RedisTarget& target = options.target;
  if (target.addresses.empty()) return absl::InvalidArgumentError("redis: target has no address");
  if (target.kind == RedisTarget::Kind::kSingle && target.addresses.size() != 1) {
    return absl::InvalidArgumentError("redis: a redis:// target has exactly one address");
  }
  if (target.kind == RedisTarget::Kind::kSentinel && target.master_name.empty()) {
    return absl::InvalidArgumentError("redis: a sentinel target needs a master name");
  }
  if (options.command_timeout <= absl::ZeroDuration() || options.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("redis: command_timeout and connect_timeout must be positive");
  }
  if (options.reconnect_backoff_min <= absl::ZeroDuration() ||
      options.reconnect_backoff_max < options.reconnect_backoff_min) {
    return absl::InvalidArgumentError("redis: want 0 < reconnect_backoff_min <= reconnect_backoff_max");
  }
  if (options.max_pending == 0) return absl::InvalidArgumentError("redis: max_pending must be positive");
  auto core = std::make_unique<Core>(std::move(options));
  absl::Status status = core->Init();
  if (!status.ok()) return status;
  core->WaitForFirstAttempt();
  return std::unique_ptr<RedisClient>(new RedisClient(std::move(core)));
}

absl::StatusOr<RedisReply> RedisClient::Call(std::vector<std::string> argv) { return core_->Call(std::move(argv)); }

void RedisClient::CallAsync(std::vector<std::string> argv, RedisCallback done) {
  core_->CallAsync(std::move(argv), std::move(done));
}

bool RedisClient::connected() const { return core_->connected(); }

RedisAddress RedisClient::address() const { return core_->address(); }

}  // namespace latchkey::control::redis
