#include "services/control/ng/ng_metrics.h"

namespace latchkey::control::ng {

NgMetrics::NgMetrics(prometheus::Registry& registry) {
  auto& requests = prometheus::BuildCounter()
                       .Name("latchkey_ng_requests_total")
                       .Help("ng protocol requests answered, by command and result")
                       .Register(registry);
  auto& durations = prometheus::BuildHistogram()
                        .Name("latchkey_ng_request_duration_seconds")
                        .Help("Time from an ng request's arrival to its reply, by command")
                        .Register(registry);
  const prometheus::Histogram::BucketBoundaries buckets{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                        0.01,   0.025,   0.05,   0.1,   0.25,   1.0};
  for (size_t c = 0; c < kCommands.size(); ++c) {
    for (size_t r = 0; r < kResults.size(); ++r) {
      requests_[c][r] = &requests.Add({{"command", kCommands[c]}, {"result", kResults[r]}});
    }
    durations_[c] = &durations.Add({{"command", kCommands[c]}}, buckets);
  }
  retransmissions = &prometheus::BuildCounter()
                         .Name("latchkey_ng_retransmissions_total")
                         .Help("ng requests received again and answered with the cached reply")
                         .Register(registry)
                         .Add({});
  auto& drops = prometheus::BuildCounter()
                    .Name("latchkey_ng_datagrams_dropped_total")
                    .Help("ng datagrams that got no reply, by reason")
                    .Register(registry);
  for (size_t d = 0; d < kDrops.size(); ++d) drops_[d] = &drops.Add({{"reason", kDrops[d]}});
  uncached = &prometheus::BuildCounter()
                  .Name("latchkey_ng_replies_uncached_total")
                  .Help("ng replies the reply cache had no room for")
                  .Register(registry)
                  .Add({});
  ignored = &prometheus::BuildCounter()
                 .Name("latchkey_ng_ignored_keys_total")
                 .Help("Unknown ng keys and flags, accepted and ignored")
                 .Register(registry)
                 .Add({});
}

size_t NgMetrics::CommandIndex(absl::string_view command) {
  for (size_t c = 0; c + 1 < kCommands.size(); ++c) {
    if (command == kCommands[c]) return c;
  }
  return kCommands.size() - 1;
}

void NgMetrics::Count(absl::string_view command, absl::string_view result, double seconds) {
  const size_t c = CommandIndex(command);
  size_t r = 2;  // error
  for (size_t i = 0; i < kResults.size(); ++i) {
    if (result == kResults[i] || (result == "load limit" && i == 3)) r = i;
  }
  requests_[c][r]->Increment();
  durations_[c]->Observe(seconds);
}

void NgMetrics::Drop(absl::string_view reason) {
  for (size_t d = 0; d < kDrops.size(); ++d) {
    if (reason == kDrops[d]) drops_[d]->Increment();
  }
}

}  // namespace latchkey::control::ng
