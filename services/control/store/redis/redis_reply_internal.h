#pragma once
// For the client's own sources only: the one place a hiredis reply becomes a RedisReply.
#include <hiredis/hiredis.h>

#include "services/control/store/redis/redis_reply.h"

namespace latchkey::control::redis {

// A deep copy; nullptr (no reply) becomes nil.
RedisReply ConvertReply(const redisReply* reply);

}  // namespace latchkey::control::redis
