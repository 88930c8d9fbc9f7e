#pragma once
// Fan-out of events to Watch streams. Each subscriber has a bounded queue: a watcher that falls that
// far behind is cut off (its stream ends with RESOURCE_EXHAUSTED; the events it would have missed are
// counted) instead of slowing down the RPCs that publish them or holding memory without bound. A
// watcher that silently lost events would believe a state that is no longer true.
#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace latchkey::control {

template <typename Event>
class EventHub {
 public:
  using Filter = std::function<bool(const Event&)>;

  class Subscription {
   public:
    // Waits up to `timeout` for the next event; nullopt on timeout or when the hub closed.
    std::optional<Event> Next(absl::Duration timeout) {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || closed_; };
      mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
      if (queue_.empty()) return std::nullopt;
      Event event = std::move(queue_.front());
      queue_.pop_front();
      return event;
    }
    bool closed() {
      absl::MutexLock lock(&mu_);
      return closed_;
    }
    // Fell `capacity` events behind and was cut off.
    bool overflowed() {
      absl::MutexLock lock(&mu_);
      return overflowed_;
    }
    // Called once, from the publishing thread, when the subscriber is cut off: a reader blocked
    // in a write to a client that stopped reading would otherwise never notice.
    void SetOnCutOff(std::function<void()> on_cut_off) {
      absl::MutexLock lock(&mu_);
      on_cut_off_ = std::move(on_cut_off);
    }

   private:
    friend class EventHub;
    Subscription(Filter filter, size_t capacity) : filter_(std::move(filter)), capacity_(capacity) {}
    // Returns false if the event was lost: the queue was full (the subscriber is then cut off).
    bool Push(const Event& event) {
      if (filter_ && !filter_(event)) return true;
      std::function<void()> cut_off;
      {
        absl::MutexLock lock(&mu_);
        if (overflowed_) return false;
        if (queue_.size() < capacity_) {
          queue_.push_back(event);
          return true;
        }
        overflowed_ = closed_ = true;
        queue_.clear();
        cut_off = std::move(on_cut_off_);
      }
      if (cut_off) cut_off();
      return false;
    }
    void Close() {
      absl::MutexLock lock(&mu_);
      closed_ = true;
    }

    Filter filter_;
    size_t capacity_;
    absl::Mutex mu_;
    std::deque<Event> queue_ ABSL_GUARDED_BY(mu_);
    bool closed_ ABSL_GUARDED_BY(mu_) = false;
    bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
    std::function<void()> on_cut_off_ ABSL_GUARDED_BY(mu_);
  };

  explicit EventHub(std::function<void()> on_drop = nullptr, size_t capacity = 10000)
      : on_drop_(std::move(on_drop)), capacity_(std::max<size_t>(capacity, 1)) {}

  std::shared_ptr<Subscription> Subscribe(Filter filter) {
    std::shared_ptr<Subscription> sub(new Subscription(std::move(filter), capacity_));
    absl::MutexLock lock(&mu_);
    if (closed_) sub->Close();
    subscribers_.push_back(sub);
    subscriber_count_.store(subscribers_.size(), std::memory_order_relaxed);
    return sub;
  }

  void Unsubscribe(const std::shared_ptr<Subscription>& sub) {
    absl::MutexLock lock(&mu_);
    subscribers_.remove(sub);
    subscriber_count_.store(subscribers_.size(), std::memory_order_relaxed);
  }

  // Lets publishers skip building an event nobody watches.
  bool has_subscribers() const { return subscriber_count_.load(std::memory_order_relaxed) > 0; }

  void Publish(const Event& event) {
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& sub : subscribers_) {
      if (!sub->Push(event) && on_drop_) on_drop_();
    }
  }

  // Wakes every watcher for shutdown.
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    for (const auto& sub : subscribers_) sub->Close();
  }

 private:
  std::function<void()> on_drop_;
  size_t capacity_;
  absl::Mutex mu_;
  std::list<std::shared_ptr<Subscription>> subscribers_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<size_t> subscriber_count_{0};
};

}  // namespace latchkey::control
