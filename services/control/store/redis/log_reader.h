#pragma once
// Reading a change log stream through the log functions (log_functions.h): the entries' fields by
// name, and the time each was appended (a stream id starts with the primary's clock in ms).
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/control/store/change_log.h"
#include "services/control/store/redis/redis_client.h"

namespace latchkey::control::redis {

struct StreamEntry {
  absl::flat_hash_map<std::string, std::string> fields;
  absl::Time time;
};

absl::StatusOr<std::string> ReadLogTail(RedisClient& client, const std::string& prefix, const std::string& log);
// OUT_OF_RANGE naming `field` (LogPositionGone) when the log no longer covers `after`.
absl::StatusOr<LogPage<StreamEntry>> ReadLogEntries(RedisClient& client, const std::string& prefix,
                                                    const std::string& log, const std::string& field,
                                                    const std::string& after, size_t limit);

}  // namespace latchkey::control::redis
