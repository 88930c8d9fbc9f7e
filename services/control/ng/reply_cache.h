#pragma once
// What makes ng retransmissions harmless: the reply to each (source address, cookie), kept for a
// while and sent again, byte for byte, when the same request arrives again. Kamailio re-sends the
// same datagram from the same connected socket after each timeout (rtpengine_tout_ms, 1 s), so a
// retransmission must never run the command twice (a second offer would allocate again, a second
// delete would answer "not found").
//
// Rules (an I/O-free core; `now` is passed in):
// - Begin(key) answers kNew the first time (the caller runs the command and calls Finish), kBusy
//   while that command is still running (drop the duplicate: the reply will go to the same address),
//   kDone with the reply once finished (send it again).
// - A finished reply is kept for at least `retention` and at most twice that (two generations,
//   swapped every `retention`, as rtpengine does with 30 s).
// - The key includes the source address: clients that share a cookie scheme (several Kamailio
//   instances with one server_id) do not collide.
// - At most `max_entries` per generation, and at most `max_bytes` of keys and replies in both
//   generations together (an SDP reply can be 64 KiB): past either, the request is still served but
//   its reply is not kept (only its retransmissions would run again); Finish says so, for counting.
#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

namespace latchkey::control::ng {

class ReplyCache {
 public:
  enum class Lookup { kNew, kBusy, kDone };

  ReplyCache(absl::Duration retention = absl::Seconds(30), size_t max_entries = 100'000,
             size_t max_bytes = 64 << 20)
      : retention_(retention), max_entries_(max_entries), max_bytes_(max_bytes) {}

  // `reply` is set for kDone.
  Lookup Begin(const std::string& source, const std::string& cookie, absl::Time now, std::string* reply);
  // False when the reply was not kept (the cache was full).
  bool Finish(const std::string& source, const std::string& cookie, std::string reply, absl::Time now);

  size_t size() const { return current_.size() + previous_.size(); }
  uint64_t uncached() const { return uncached_; }

 private:
  struct Entry {
    bool done = false;
    std::string reply;
  };
  static std::string Key(const std::string& source, const std::string& cookie);
  void Rotate(absl::Time now);

  const absl::Duration retention_;
  const size_t max_entries_;
  const size_t max_bytes_;
  size_t current_bytes_ = 0;   // keys and replies kept in current_
  size_t previous_bytes_ = 0;  // ... in previous_
  absl::flat_hash_map<std::string, Entry> current_;
  absl::flat_hash_map<std::string, Entry> previous_;
  absl::Time rotated_at_ = absl::InfinitePast();
  uint64_t uncached_ = 0;
};

}  // namespace latchkey::control::ng
