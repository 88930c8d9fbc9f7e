#pragma once
// One store change log (store/change_log.h), tailed into memory by one thread per control replica,
// and read by position: Watch streams and the keepalive leader each hold a Reader.
//
// Rules:
// - Entries arrive in the log's order; a reader sees each entry after its position once, in order.
// - The last `capacity` entries are kept. A reader whose position is older than that reads from the
//   store's log directly until it reaches them (a Watch resumed with an old token); if the store's
//   log no longer has its position either, Next answers OUT_OF_RANGE: it must re-list.
// - A reader reading from memory that falls `capacity` entries behind (the entry it has yet to read
//   is dropped) is cut off: Next answers RESOURCE_EXHAUSTED, and the cut-off callback runs once on
//   the tailing thread (a Watch blocked in a write to a client that stopped reading cancels its call);
//   Close waits for a callback in flight, so the callback never outlives its reader's owner. A slow
//   reader costs no memory of its own; it only loses its place. A reader opened with
//   `fall_back_to_store` (the keepalive leader) is never cut off: it goes on from the store's log.
// - When the tailer itself loses its place (the store's log was trimmed past it during an outage, or
//   the store was replaced), every reader reading from memory gets OUT_OF_RANGE.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/log/log.h"
#include "services/control/store/change_log.h"

namespace latchkey::control {

struct EventFeedOptions {
  size_t capacity = 10'000;
  absl::Duration poll = absl::Milliseconds(20);  // idle tailing interval (Poke wakes it at once)
  size_t page = 1000;                            // entries per store read
  std::string name;                              // for log lines: "bindings", "sessions"
};

template <typename Entry>
class EventFeed {
 public:
  using ReadFn = std::function<absl::StatusOr<LogPage<Entry>>(const std::string& after, size_t limit)>;
  using TailFn = std::function<absl::StatusOr<std::string>()>;

  class Reader {
   public:
    // Up to `limit` entries after the reader's position, waiting up to `wait` when there are none
    // (an empty result then). Advances the position past what it returns.
    absl::StatusOr<std::vector<Logged<Entry>>> Next(size_t limit, absl::Duration wait) {
      return feed_->ReadNext(*this, limit, wait);
    }
    // The position after the last entry returned (the resume token); empty until the feed knows
    // where the log ends (a reader opened at "" before the first successful read of the store).
    std::string position() const {
      absl::MutexLock lock(&feed_->mu_);
      return position_;
    }
    void SetOnCutOff(std::function<void()> on_cut_off) {
      absl::MutexLock lock(&feed_->mu_);
      on_cut_off_ = std::move(on_cut_off);
    }
    // Cut off, or the feed lost its place: Next would fail.
    bool ended() const {
      absl::MutexLock lock(&feed_->mu_);
      return !ended_.ok();
    }

   private:
    friend class EventFeed;
    explicit Reader(EventFeed* feed) : feed_(feed) {}
    EventFeed* feed_;
    std::string position_;
    bool in_memory_ = false;   // reading from the kept entries; `seq_` is the last one read
    uint64_t seq_ = 0;
    absl::Status ended_;       // set when cut off or when the feed lost its place
    bool fall_back_to_store_ = false;
    std::function<void()> on_cut_off_;
  };

  EventFeed(EventFeedOptions options, ReadFn read, TailFn tail)
      : options_(std::move(options)), read_(std::move(read)), tail_(std::move(tail)) {
    options_.capacity = std::max<size_t>(options_.capacity, 1);
  }
  ~EventFeed() { Stop(); }

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }
  // Something was just written: tail soon rather than at the next poll. Called on every write, so
  // only the first call since the last read takes the lock (and wakes the tailer).
  void Poke() {
    if (poke_pending_.exchange(true, std::memory_order_acq_rel)) return;
    absl::MutexLock lock(&mu_);
    poked_ = true;
  }

  // `position` "": from the end of the log (what is appended from now on), as the store has it now,
  // which may be ahead of what this feed has tailed (or, if the store cannot say, the feed's end).
  std::shared_ptr<Reader> Open(const std::string& position, bool fall_back_to_store = false) {
    std::shared_ptr<Reader> reader(new Reader(this));
    reader->fall_back_to_store_ = fall_back_to_store;
    std::string from = position;
    if (from.empty()) {
      if (auto tail = tail_(); tail.ok()) from = *std::move(tail);
    }
    absl::MutexLock lock(&mu_);
    reader->position_ = from;
    if (from.empty() && started_) {
      reader->position_ = PositionOf(last_seq_);
      reader->in_memory_ = true;
      reader->seq_ = last_seq_;
    }
    readers_.push_back(reader);
    return reader;
  }
  // After this the feed no longer calls the reader's cut-off callback (one in flight is waited for).
  void Close(const std::shared_ptr<Reader>& reader) {
    absl::MutexLock lock(&mu_);
    readers_.remove(reader);
    reader->on_cut_off_ = nullptr;
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return callbacks_in_flight_ == 0; };
    mu_.Await(absl::Condition(&idle));
  }
  // Whether `reader` has read past the entry at `position` (a position this feed holds).
  bool Reached(const Reader& reader, const std::string& position) const {
    absl::MutexLock lock(&mu_);
    auto it = seq_of_.find(position);
    return reader.in_memory_ && it != seq_of_.end() && reader.seq_ >= it->second;
  }
  // Wakes every reader for shutdown: Next answers UNAVAILABLE from then on (clients resume elsewhere).
  void Shutdown() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  bool shutting_down() const {
    absl::MutexLock lock(&mu_);
    return closed_;
  }

 private:
  // The position string of entry `seq` (or of the base, the position before the first kept entry).
  std::string PositionOf(uint64_t seq) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (seq == base_seq_) return base_position_;
    return entries_[seq - base_seq_ - 1].position;
  }

  absl::StatusOr<std::vector<Logged<Entry>>> ReadNext(Reader& reader, size_t limit, absl::Duration wait) {
    std::string from_store;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return closed_ || !reader.ended_.ok() || (started_ && !reader.in_memory_) ||
               (reader.in_memory_ && last_seq_ > reader.seq_);
      };
      // A reader opened at "" before the feed started waits for it here.
      if (!reader.in_memory_ && reader.position_.empty()) {
        mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
        if (closed_) return ShuttingDown();
        if (!started_) return std::vector<Logged<Entry>>();
        if (reader.position_.empty()) {
          reader.position_ = PositionOf(last_seq_);
          reader.in_memory_ = true;
          reader.seq_ = last_seq_;
        }
      }
      if (closed_) return ShuttingDown();
      if (!reader.ended_.ok()) return reader.ended_;
      if (!reader.in_memory_ && started_) {
        if (auto it = seq_of_.find(reader.position_); it != seq_of_.end()) {
          reader.in_memory_ = true;
          reader.seq_ = it->second;
        }
      }
      if (reader.in_memory_) {
        mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
        if (closed_) return ShuttingDown();
        if (!reader.ended_.ok()) return reader.ended_;
        std::vector<Logged<Entry>> out;
        while (reader.seq_ < last_seq_ && out.size() < limit) {
          ++reader.seq_;
          out.push_back(entries_[reader.seq_ - base_seq_ - 1]);
        }
        reader.position_ = PositionOf(reader.seq_);
        return out;
      }
      from_store = reader.position_;
    }
    // Behind what memory keeps: catch up from the store's own log.
    auto page = read_(from_store, limit);
    if (!page.ok()) return page.status();
    absl::MutexLock lock(&mu_);
    reader.position_ = page->next;
    if (page->entries.empty()) {
      // At the store's end, but the tailer has not read that far yet: give it a moment.
      auto ahead = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ || seq_of_.contains(reader.position_); };
      mu_.AwaitWithTimeout(absl::Condition(&ahead), std::min(wait, options_.poll * 2));
    }
    return std::move(page->entries);
  }

  static absl::Status ShuttingDown() { return absl::UnavailableError("control is shutting down; resume elsewhere"); }

  void Run() {
    absl::Duration backoff = options_.poll;
    std::string after;
    for (;;) {
      {
        absl::MutexLock lock(&mu_);
        auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || poked_; };
        if (!after.empty() && !caught_up_) {
          // More was waiting in the store: read on at once.
        } else {
          mu_.AwaitWithTimeout(absl::Condition(&wake), backoff);
        }
        if (stopping_) return;
        if (poked_) {
          // Let a burst of writes gather: one read per few milliseconds, not one per write.
          mu_.AwaitWithTimeout(absl::Condition(&stopping_), kCoalesce);
          if (stopping_) return;
        }
        poked_ = false;
        poke_pending_.store(false, std::memory_order_release);
      }
      if (after.empty()) {
        auto tail = tail_();
        if (!tail.ok()) {
          backoff = std::min(backoff * 2, absl::Seconds(1));
          continue;
        }
        after = *tail;
        absl::MutexLock lock(&mu_);
        Reset(after);
        continue;
      }
      auto page = read_(after, options_.page);
      if (!page.ok()) {
        if (absl::IsOutOfRange(page.status())) {
          // Trimmed past us (a long outage), or the store was replaced: what memory holds no longer
          // joins up with the store. Readers in memory have missed entries; nobody may join them.
          log::LogWarning("event feed lost its place; watchers must re-list").Kv("feed", options_.name);
          after.clear();  // start again from the log's end
          absl::MutexLock lock(&mu_);
          EndInMemoryReaders();
          entries_.clear();
          seq_of_.clear();
          started_ = false;
        }
        backoff = std::min(backoff * 2, absl::Seconds(1));
        continue;
      }
      backoff = options_.poll;
      after = page->next;
      std::vector<std::function<void()>> cut_offs;
      {
        absl::MutexLock lock(&mu_);
        caught_up_ = page->entries.size() < options_.page;
        for (Logged<Entry>& entry : page->entries) Append(std::move(entry), &cut_offs);
        callbacks_in_flight_ += cut_offs.size();  // Close waits for these
      }
      for (auto& cut_off : cut_offs) {
        cut_off();
        absl::MutexLock lock(&mu_);
        --callbacks_in_flight_;
      }
    }
  }

  void EndInMemoryReaders() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const auto& reader : readers_) {
      if (reader->in_memory_ && reader->ended_.ok()) reader->ended_ = LogPositionGone("resume_token", reader->position_);
    }
  }

  // Starts the kept entries afresh after `position`.
  void Reset(const std::string& position) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    EndInMemoryReaders();  // none but after a lost place (cleared then): their seqs mean nothing now
    entries_.clear();
    seq_of_.clear();
    base_seq_ = last_seq_;
    base_position_ = position;
    seq_of_[position] = base_seq_;
    started_ = true;
    caught_up_ = true;
  }

  void Append(Logged<Entry> entry, std::vector<std::function<void()>>* cut_offs) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++last_seq_;
    seq_of_[entry.position] = last_seq_;
    entries_.push_back(std::move(entry));
    if (entries_.size() <= options_.capacity) return;
    // The oldest entry goes: readers that have not read it lose their place.
    seq_of_.erase(base_position_);
    ++base_seq_;
    base_position_ = std::move(entries_.front().position);
    entries_.pop_front();
    for (const auto& reader : readers_) {
      if (!reader->in_memory_ || reader->seq_ >= base_seq_ || !reader->ended_.ok()) continue;
      if (reader->fall_back_to_store_) {
        reader->in_memory_ = false;  // its position is still one of the store's: read on from there
        continue;
      }
      reader->ended_ = absl::ResourceExhaustedError(
          "watch: the stream fell too far behind and was cut off; read faster or filter, then watch again from "
          "the last resume_token (or re-list)");
      if (reader->on_cut_off_) cut_offs->push_back(std::move(reader->on_cut_off_));
    }
  }

  static constexpr absl::Duration kCoalesce = absl::Milliseconds(2);

  EventFeedOptions options_;
  const ReadFn read_;
  const TailFn tail_;
  mutable absl::Mutex mu_;
  std::deque<Logged<Entry>> entries_ ABSL_GUARDED_BY(mu_);  // seq base_seq_+1 .. last_seq_
  absl::flat_hash_map<std::string, uint64_t> seq_of_ ABSL_GUARDED_BY(mu_);
  uint64_t base_seq_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_seq_ ABSL_GUARDED_BY(mu_) = 0;
  std::string base_position_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool caught_up_ ABSL_GUARDED_BY(mu_) = true;
  bool poked_ ABSL_GUARDED_BY(mu_) = false;
  size_t callbacks_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<bool> poke_pending_{false};
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::list<std::shared_ptr<Reader>> readers_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace latchkey::control
