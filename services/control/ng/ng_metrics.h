#pragma once
// The ng front door's counters. Labels come from fixed sets: commands outside the known ones count
// as "other", so no client can grow the series.
#include <array>
#include <string>

#include "absl/strings/string_view.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace latchkey::control::ng {

class NgMetrics {
 public:
  static constexpr std::array<const char*, 6> kCommands = {"ping", "offer", "answer", "delete", "query", "other"};
  static constexpr std::array<const char*, 4> kResults = {"ok", "pong", "error", "load_limit"};
  static constexpr std::array<const char*, 8> kDrops = {"no_cookie",  "long_cookie", "not_allowed", "truncated",
                                                        "in_progress", "expired",     "send_failed", "bad_source"};

  explicit NgMetrics(prometheus::Registry& registry);

  // latchkey_ng_requests_total{command,result} and latchkey_ng_request_duration_seconds{command}.
  void Count(absl::string_view command, absl::string_view result, double seconds);
  // latchkey_ng_retransmissions_total: a request seen again, answered from the reply cache.
  prometheus::Counter* retransmissions;
  // latchkey_ng_datagrams_dropped_total{reason}: datagrams that got no reply (no cookie to answer
  // with, a cookie longer than any client's, a source outside ng allow, truncated, a duplicate of a
  // request still being processed, a request that waited in the socket longer than a client waits
  // for its answer, a reply the socket refused, an unreadable source address).
  void Drop(absl::string_view reason);
  // latchkey_ng_ignored_keys_total: unknown keys and flags, accepted and ignored.
  prometheus::Counter* ignored;
  // latchkey_ng_replies_uncached_total: replies the reply cache had no room for (their
  // retransmissions run again).
  prometheus::Counter* uncached;

 private:
  static size_t CommandIndex(absl::string_view command);
  std::array<std::array<prometheus::Counter*, kResults.size()>, kCommands.size()> requests_{};
  std::array<prometheus::Histogram*, kCommands.size()> durations_{};
  std::array<prometheus::Counter*, kDrops.size()> drops_{};
};

}  // namespace latchkey::control::ng
