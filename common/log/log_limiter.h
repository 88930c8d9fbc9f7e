#pragma once
// Bounds how many lines one kind of log event writes: at most `burst` per `interval`, the rest
// suppressed and counted, so that whoever can make a server fail a request cannot also flood its
// log. The next line written reports how many were suppressed before it. I/O-free and not
// thread-safe (its owner guards it); `now` is passed in.
#include <cstdint>

#include "absl/time/time.h"

namespace latchkey::log {

class LogLimiter {
 public:
  LogLimiter(int burst, absl::Duration interval) : burst_(burst), interval_(interval) {}

  // True when this event may write its line; `*suppressed` is then the number of events refused
  // since the last line written (to report in it).
  bool Allow(absl::Time now, uint64_t* suppressed) {
    if (now - window_start_ >= interval_) {
      window_start_ = now;
      written_ = 0;
    }
    if (written_ >= burst_) {
      ++suppressed_;
      return false;
    }
    ++written_;
    *suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  const int burst_;
  const absl::Duration interval_;
  absl::Time window_start_ = absl::InfinitePast();
  int written_ = 0;
  uint64_t suppressed_ = 0;
};

}  // namespace latchkey::log
